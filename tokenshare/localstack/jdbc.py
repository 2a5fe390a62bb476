"""The official ClickHouse JDBC driver (the one DBeaver uses), fetched from Maven
Central once into the cache beside the Kafka jars; tests run it against the
store's SQL port with ``java``'s single-file source launch."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console

from tokenshare.localstack.kafka import cache_root, maven_dependencies

JDBC_VERSION = "0.10.0"


def ensure_driver(version: str = JDBC_VERSION, console: Console | None = None) -> list[Path]:
    """The driver's jars (fetched on first use): a Java class path."""
    template = resources.files("tokenshare.localstack").joinpath("jdbc-pom.xml").read_text("utf-8")
    libs = maven_dependencies(
        cache_root() / f"clickhouse-jdbc-{version}",
        template.replace("@JDBC_VERSION@", version),
        f"the ClickHouse JDBC driver {version}",
        console,
    )
    return sorted(libs.glob("*.jar"))
