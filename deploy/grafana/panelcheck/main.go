// Command panelcheck runs every ClickHouse panel query of a Grafana dashboard
// the way Grafana's ClickHouse datasource does: template variables replaced,
// the plugin's macros expanded (macros.go), and the SQL sent with clickhouse-go
// v2 over the HTTP protocol with the options the plugin's backend sets
// (pkg/plugin/driver.go: database/sql through clickhouse.OpenDB, gzip, a ping
// first). It prints, as JSON, each query's columns (the driver's type name and
// Go scan type) and rows, and exits 1 if any query failed.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

type target struct {
	RefID      string `json:"refId"`
	RawSQL     string `json:"rawSql"`
	Datasource struct {
		Type string `json:"type"`
	} `json:"datasource"`
}

type panel struct {
	Title   string   `json:"title"`
	Targets []target `json:"targets"`
}

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name    string `json:"name"`
			Current struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`      // DatabaseTypeName: the ClickHouse type
	ScanType string `json:"scan_type"` // the Go type Grafana's frame converter gets
}

type result struct {
	Panel   string     `json:"panel"`
	RefID   string     `json:"ref_id"`
	SQL     string     `json:"sql"`
	Columns []column   `json:"columns"`
	Rows    [][]string `json:"rows"`
	Error   string     `json:"error,omitempty"`
}

type vars map[string]string

func (v vars) String() string { return fmt.Sprint(map[string]string(v)) }

func (v vars) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", s)
	}
	v[name] = value
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8123", "host:port of the ClickHouse HTTP interface")
	path := flag.String("dashboard", "", "the dashboard JSON")
	from := flag.String("from", "", "time range start, RFC 3339")
	to := flag.String("to", "", "time range end, RFC 3339")
	interval := flag.Duration("interval", time.Hour, "the panel interval ($__interval)")
	database := flag.String("database", "", "the datasource's default database")
	overrides := vars{}
	flag.Var(overrides, "var", "a template variable, name=value (repeatable)")
	flag.Parse()
	if err := run(*addr, *path, *from, *to, *interval, *database, overrides); err != nil {
		fmt.Fprintln(os.Stderr, "panelcheck:", err)
		os.Exit(1)
	}
}

func run(addr, path, from, to string, interval time.Duration, database string, overrides vars) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var dash dashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ctx := QueryContext{Interval: interval}
	if ctx.From, err = time.Parse(time.RFC3339, from); err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	if ctx.To, err = time.Parse(time.RFC3339, to); err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	values := map[string]string{}
	for _, v := range dash.Templating.List {
		values[v.Name] = fmt.Sprint(v.Current.Value)
	}
	for k, v := range overrides {
		values[k] = v
	}
	// The plugin's options for protocol "http" (buildClickHouseOptions).
	db := clickhouse.OpenDB(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: database},
		Protocol:    clickhouse.HTTP,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionGZIP},
		DialTimeout: 10 * time.Second,
		ReadTimeout: 60 * time.Second,
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "grafana-datasource", Version: "panelcheck"},
		}},
	})
	defer db.Close()
	bg := context.Background()
	if err := db.PingContext(bg); err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	var results []result
	failed := 0
	for _, p := range dash.Panels {
		for _, t := range p.Targets {
			if t.Datasource.Type != "grafana-clickhouse-datasource" {
				continue
			}
			r := query(bg, db, p.Title, t, values, ctx)
			if r.Error != "" {
				failed++
			}
			results = append(results, r)
		}
	}
	out, err := json.MarshalIndent(results, "", " ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	if failed > 0 {
		return fmt.Errorf("%d of %d panel queries failed", failed, len(results))
	}
	return nil
}

func substitute(text string, values map[string]string) string {
	for name, value := range values {
		text = strings.ReplaceAll(text, "${"+name+"}", value)
		text = strings.ReplaceAll(text, "$"+name, value)
	}
	return text
}

func query(bg context.Context, db *sql.DB, title string, t target, values map[string]string, ctx QueryContext) result {
	r := result{Panel: title, RefID: t.RefID, Rows: [][]string{}, Columns: []column{}}
	expanded, err := Interpolate(substitute(t.RawSQL, values), ctx)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.SQL = expanded
	rows, err := db.QueryContext(bg, expanded)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	for _, ct := range types {
		r.Columns = append(r.Columns, column{ct.Name(), ct.DatabaseTypeName(), ct.ScanType().String()})
	}
	for rows.Next() {
		cells := make([]any, len(types))
		for i, ct := range types {
			cells[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(cells...); err != nil {
			r.Error = err.Error()
			return r
		}
		row := make([]string, len(cells))
		for i, c := range cells {
			row[i] = render(reflect.ValueOf(c).Elem().Interface())
		}
		r.Rows = append(r.Rows, row)
	}
	if err := rows.Err(); err != nil {
		r.Error = err.Error()
	}
	return r
}

// render writes a scanned value; instants as RFC 3339 with their location's name.
func render(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.Format(time.RFC3339Nano) + " " + x.Location().String()
	case *time.Time:
		if x == nil {
			return "NULL"
		}
		return render(*x)
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return "NULL"
		}
		return render(rv.Elem().Interface())
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
		if text, err := json.Marshal(v); err == nil { // arrays, maps, tuples as JSON
			return string(text)
		}
	}
	return fmt.Sprint(v)
}
