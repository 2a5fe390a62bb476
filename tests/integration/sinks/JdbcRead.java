// Reads the store's SQL port through the official ClickHouse JDBC driver (DBeaver's):
// java -cp <driver jars> JdbcRead.java <jdbc url> prints one line per check.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;

public class JdbcRead {
    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0], "default", "")) {
            System.out.println("product " + conn.getMetaData().getDatabaseProductName());
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery(
                     "SELECT n, at, price, label FROM tokenshare.typed ORDER BY n")) {
                ResultSetMetaData meta = rs.getMetaData();
                for (int i = 1; i <= meta.getColumnCount(); i++) {
                    System.out.println("column " + meta.getColumnName(i) + " " + meta.getColumnTypeName(i));
                }
                while (rs.next()) {
                    System.out.println("row " + rs.getString(1) + " | " + rs.getObject(2) + " | "
                        + rs.getBigDecimal(3).toPlainString() + " | " + rs.getString(4));
                }
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT label FROM tokenshare.typed WHERE price < ?")) {
                ps.setBigDecimal(1, new java.math.BigDecimal("0"));
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        System.out.println("bound " + rs.getString(1));
                    }
                }
            }
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE tokenshare.typed");
                System.out.println("ALLOWED drop");
            } catch (SQLException e) {
                System.out.println("refused " + e.getMessage().replace('\n', ' '));
            }
        }
    }
}
