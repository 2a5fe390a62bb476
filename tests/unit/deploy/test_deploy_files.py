"""deploy/: every file parses, and what it runs, configures and queries exists.

Docker and Kubernetes are not available where the tests run, so the compose
stack and the manifests are checked structurally and against the code itself:
commands against the real CLI, environment names and values against
``Settings``, metric names against what a worker exports, the Grafana
dashboard's SQL run against the embedded ClickHouse, and the capacity plan's
arithmetic recomputed from its own parameters.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from clickhouse_connect.driver.client import Client
from pydantic_settings import BaseSettings

from tests.factories import crossover_alert, event
from tests.paths import ROOT
from tokenshare.cli.main import main
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.outputs import AlertMessage
from tokenshare.schema.wire import encode
from tokenshare.settings import Settings
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.share_tables import write_alerts
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.topics import topic_specs

DEPLOY = ROOT / "deploy"


def module_source(name: str) -> str:
    """The source text of one of the project's modules, wherever its portion lives."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin).read_text()


COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tokenshare.json"
ONE_SHOT_DONE = "service_completed_successfully"


# --- helpers ---------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads: TOKENSHARE_<FIELD>, nested models
    under their own prefix (TOKENSHARE_KAFKA_<FIELD>), and TOKENSHARE_CONFIG."""
    names = {"TOKENSHARE_CONFIG"}
    prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseSettings):
            sub = kind.model_config.get("env_prefix", "")
            names |= {f"{sub}{n}".upper() for n in kind.model_fields}
        else:
            names.add(f"{prefix}{name}".upper())
    return names


SETTINGS_ENV = settings_env_names()


def resolve(value: object) -> str:
    """A compose value as a container would see it, with dummy secrets:
    ${X:-default} -> default, ${X:?msg} and ${X} -> 24 hex digits, $$ -> $."""
    text = str(value)
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}", "0123456789abcdef01234567", text)
    return text.replace("$$", "$")


def check_settings_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """TOKENSHARE_* names exist and their values validate, as the process would load them."""
    unknown = {k for k in env if k.startswith("TOKENSHARE_")} - SETTINGS_ENV
    assert not unknown, f"not settings (tokenshare/settings.py): {sorted(unknown)}"
    monkeypatch.delenv("TOKENSHARE_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def check_cli(argv: list[str]) -> None:
    """argv runs a real `tokenshare` subcommand with options it declares."""
    assert argv[0] == "tokenshare", argv
    name = argv[1]
    assert name in main.commands, f"`tokenshare {name}` is not a command of tokenshare.cli.main"
    command = main.commands[name]
    declared = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}
    for token in argv[2:]:
        if token.startswith("-"):
            assert token.split("=", 1)[0] in declared, f"`tokenshare {name}` has no {token}"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


SERVICES: dict[str, Any] = compose()["services"]


def is_tokenshare(service: dict[str, Any]) -> bool:
    return "tokenshare" in str(service.get("image", "")) or "build" in service


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> file of this repository, for `../x:/y[:ro]` volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: resolve(v) for k, v in (service.get("environment") or {}).items()}


def k8s_manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in k8s_manifests():
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield doc["metadata"]["name"], spec["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


CONFIG_MAP = manifest("ConfigMap", "tokenshare-config")["data"]
SECRET = yaml_docs(K8S / "secret.example.yaml")[0]


def exported_metrics() -> set[str]:
    """Series the worker, the store and ingest-http serve, from their registries
    (streams/metrics.py, sinks/metrics.py, producers/adapters/http_metrics.py)."""
    from types import SimpleNamespace

    from tokenshare.producers.adapters.http_ingest import IngestStats
    from tokenshare.producers.adapters.http_metrics import HttpMetrics
    from tokenshare.sinks.metrics import StoreMetrics
    from tokenshare.streams.metrics import IngestMetrics, ShareCollector

    worker = IngestMetrics()
    idle = SimpleNamespace(alerts=0, ticks=0, failed_ticks=0, current={})
    hooks = SimpleNamespace(stats=SimpleNamespace(delivered=0, failed=0, dropped=0))
    shares: Any = SimpleNamespace(stats=idle, webhook=hooks)
    worker.registry.register(ShareCollector(shares, bool))
    registries = [
        worker.registry,
        StoreMetrics().registry,
        HttpMetrics(lambda: asdict(IngestStats())).registry,
    ]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def topic_loop(script: str) -> set[str]:
    match = re.search(r"for topic in ([^;]+); do", script)
    assert match, script
    return set(match.group(1).split())


def tokenshare_topic_suffixes() -> set[str]:
    prefix = "tokenshare"
    return {t.name.removeprefix(prefix + ".") for t in topic_specs(Settings(topic_prefix=prefix))}


COMMANDS = [
    pytest.param(s["command"], id=f"compose:{name}")
    for name, s in SERVICES.items()
    if is_tokenshare(s)
] + [
    pytest.param(c["command"] + c.get("args", []), id=f"k8s:{name}/{c['name']}")
    for name, pod in pod_specs()
    for c in containers(pod)
    if c["image"].startswith("tokenshare")
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_every_tokenshare_process_runs_a_real_cli_command(argv: list[str]) -> None:
    check_cli(argv)


# --- compose -------------------------------------------------------------------------


def test_compose_has_the_whole_stack() -> None:
    expected = {"kafka-1", "kafka-2", "kafka-3", "keeper", "clickhouse", "topics", "worker"}
    expected |= {"store", "ingest", "prometheus", "grafana"}
    assert expected <= set(SERVICES)
    commands = {name: s["command"][:2] for name, s in SERVICES.items() if is_tokenshare(s)}
    assert commands["worker"] == ["tokenshare", "worker"]
    assert commands["store"] == ["tokenshare", "store"]
    assert SERVICES["ingest"]["command"] == [
        "tokenshare", "ingest-http", "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    partitions = int(resolve(SERVICES["worker"]["environment"]["TOKENSHARE_PARTITIONS"]))
    workers = int(resolve(SERVICES["worker"]["deploy"]["replicas"]))
    stores = int(resolve(SERVICES["store"]["deploy"]["replicas"]))
    # Several of each, and never more than the partitions they share.
    assert 2 <= workers <= partitions and 2 <= stores <= partitions


def test_kafka_is_a_three_node_kraft_cluster_with_rf3_and_min_isr_2() -> None:
    brokers = {n: compose_env(SERVICES[n]) for n in ("kafka-1", "kafka-2", "kafka-3")}
    voters: set[str] = set()
    for name, env in brokers.items():
        assert "KAFKA_ZOOKEEPER_CONNECT" not in env
        roles = set(env["KAFKA_PROCESS_ROLES"].split(","))
        assert "broker" in roles, name
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert f"//{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    # One quorum, three voters, each a broker service of this file.
    (quorum,) = voters
    ids = {v.split("@")[0]: v.split("@")[1].split(":")[0] for v in quorum.split(",")}
    assert len(ids) == 3 and set(ids.values()) == set(brokers)
    assert {brokers[host]["KAFKA_NODE_ID"] for host in brokers} == set(ids)
    for node_id, host in ids.items():
        assert brokers[host]["KAFKA_NODE_ID"] == node_id
    # The same cluster id everywhere, and a valid one (a UUID in base64url, 16 bytes).
    (cluster_id,) = {env["CLUSTER_ID"] for env in brokers.values()}
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    tokenshare_env = compose_env(SERVICES["worker"])
    assert tokenshare_env["TOKENSHARE_REPLICATION_FACTOR"] == "3"
    assert set(tokenshare_env["TOKENSHARE_KAFKA_BOOTSTRAP"].split(",")) == {
        f"{b}:9092" for b in brokers
    }


def test_compose_pins_min_isr_on_every_tokenshare_topic() -> None:
    # tokenshare topics creates topics with min.insync.replicas=1 (topic-level).
    job = SERVICES["topics-config"]
    assert job["depends_on"]["topics"]["condition"] == ONE_SHOT_DONE
    script = job["command"][0]
    assert "min.insync.replicas=2" in script
    assert topic_loop(script) == tokenshare_topic_suffixes()


def test_clickhouse_runs_with_keeper_and_creates_the_roles() -> None:
    keeper = SERVICES["keeper"]
    keeper_mounts = bind_mounts(keeper)
    (config_path,) = [t for t in keeper_mounts if t in keeper["command"][-1]]
    keeper_xml = ET.parse(keeper_mounts[config_path]).getroot()
    keeper_port = keeper_xml.findtext("keeper_server/tcp_port")
    assert keeper_xml.find("keeper_server/raft_configuration/server") is not None

    clickhouse = SERVICES["clickhouse"]
    assert clickhouse["image"].startswith("clickhouse/clickhouse-server:")
    assert clickhouse["depends_on"]["keeper"]["condition"] == "service_healthy"
    mounts = bind_mounts(clickhouse)
    for source in mounts.values():
        assert source.exists(), source
    (server_config,) = [s for t, s in mounts.items() if "/config.d/" in t]
    node = ET.parse(server_config).getroot().find("zookeeper/node")
    assert node is not None
    assert (node.findtext("host"), node.findtext("port")) == ("keeper", keeper_port)
    # The init script fills in exactly the placeholders of roles.sql, from the env.
    (init,) = [s for t, s in mounts.items() if t.startswith("/docker-entrypoint-initdb.d/")]
    roles = DEPLOY / "clickhouse" / "roles.sql"
    placeholders = set(re.findall(r"\$\{(TOKENSHARE_\w+)\}", roles.read_text()))
    assert mounts["/etc/tokenshare/roles.sql"] == roles
    assert "/etc/tokenshare/roles.sql" in init.read_text()
    assert placeholders <= set(re.findall(r"TOKENSHARE_\w+_PASSWORD", init.read_text()))
    passed = {k for k in clickhouse["environment"] if k.startswith("TOKENSHARE_")}
    assert passed == placeholders


def test_every_service_has_a_healthcheck_or_is_a_one_shot() -> None:
    for name, service in SERVICES.items():
        dependents = [
            s["depends_on"][name]["condition"]
            for s in SERVICES.values()
            if isinstance(s.get("depends_on"), dict) and name in s["depends_on"]
        ]
        if service.get("restart") == "no":
            # A one-shot exits: the services after it wait for its success instead.
            assert dependents and set(dependents) == {ONE_SHOT_DONE}, name
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert set(dependents) <= {"service_healthy"}, name


def test_tokenshare_services_use_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in SERVICES.items():
        if not is_tokenshare(service):
            continue
        with monkeypatch.context() as env:
            settings = check_settings_env(compose_env(service), env)
        assert settings.replication_factor == 3, name
        if name in ("worker", "store"):
            assert not settings.embedded, "server mode: several stores, one ClickHouse"
            assert settings.worker_id == "tokenshare"  # one Faust app, one consumer group
    # Health checks run inside the container, on the ports the settings give
    # (the paths are checked against the code by test_probes_hit_routes...).
    worker = compose_env(SERVICES["worker"])
    assert worker["TOKENSHARE_WORKER_WEB_PORT"] == "6066"
    assert "127.0.0.1:6066/" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    query_port = Settings.model_fields["store_query_port"].default
    assert f"127.0.0.1:{query_port}/" in " ".join(SERVICES["store"]["healthcheck"]["test"])


def test_no_secret_is_written_in_the_deploy_files() -> None:
    secretish = re.compile(r"PASSWORD|SECRET|(^|_)TOKEN($|_)")
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
                assert re.fullmatch(r"\$\{\w+:?\?[^}]*\}", password), f"{name}.{key}"
            if secretish.search(key):
                assert re.fullmatch(r"\$\{\w+(:?\?[^}]*)?\}", text), f"{name}.{key}: {text}"
    example = (DEPLOY / "compose" / ".env.example").read_text()
    for line in example.splitlines():
        if "=" in line and not line.startswith("#") and secretish.search(line.split("=")[0]):
            assert line.split("=", 1)[1] == "", f".env.example must leave {line} empty"
    assert ".env" in (DEPLOY / "compose" / ".gitignore").read_text().split()
    for key, value in SECRET["stringData"].items():
        assert "REPLACE_WITH_" in value, f"secret.example.yaml {key} must be a placeholder"
    datasources = yaml_docs(DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml")
    for ds in datasources[0]["datasources"]:
        for value in (ds.get("secureJsonData") or {}).values():
            assert re.fullmatch(r"\$\{?\w+\}?", value), ds["name"]


def test_dockerfile_installs_the_project_on_python_311_slim() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip wheel --wheel-dir /wheels ." in text and "install" in text
    # The wheel is built from the roots pyproject.toml lists: each must be copied.
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    roots = {path.split("/")[0] for path in wheel["targets"]["wheel"]["only-include"]}
    assert roots >= {"tokenshare", "producers", "streams", "sinks", "schema"}
    for root in roots:
        assert re.search(rf"^COPY {root} \./{root}$", text, re.M), f"Dockerfile misses {root}/"
    for service in SERVICES.values():
        if "build" in service:
            context = DEPLOY.joinpath("compose", service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).exists()


def served_routes() -> dict[str, set[str]]:
    """HTTP GET paths each process serves, read from its source."""
    app = module_source("tokenshare.streams.app")
    query = module_source("tokenshare.sinks.ch_http")
    ingest = module_source("tokenshare.producers.adapters.http_ingest")
    return {
        "worker": set(re.findall(r'@app\.page\("([^"]+)"\)', app)),
        "store": set(re.findall(r'"(/\w+)"', query.split("def _handle")[1].split("def _query")[0])),
        "ingest": set(re.findall(r'add_get\("([^"]+)"', ingest)),
    }


def probed_paths() -> Iterator[tuple[str, str]]:
    """(component, path) of every HTTP healthcheck and probe in compose and k8s."""
    for component in ("worker", "store", "ingest"):
        check = " ".join(SERVICES[component]["healthcheck"]["test"])
        yield from ((component, p) for p in re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", check))
        pod = manifest("Deployment", f"tokenshare-{component}")["spec"]["template"]["spec"]
        for probe in ("readinessProbe", "livenessProbe"):
            spec = pod["containers"][0][probe]
            if "httpGet" in spec:
                yield component, spec["httpGet"]["path"]
            elif "exec" in spec:
                text = " ".join(spec["exec"]["command"])
                yield from ((component, p) for p in re.findall(r"127\.0\.0\.1:\d+(/\w+)", text))


def test_probes_hit_routes_the_processes_serve() -> None:
    routes = served_routes()
    assert all(routes.values()), routes
    probed = list(probed_paths())
    assert {c for c, _ in probed} == set(routes)
    for component, path in probed:
        assert path in routes[component], f"{component} serves no {path}: {routes[component]}"


# --- Prometheus and Grafana ------------------------------------------------------------


def test_prometheus_scrapes_every_worker_and_rules_use_real_metrics() -> None:
    config = yaml_docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (sd,) = jobs["tokenshare-worker"]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == 6066
    assert jobs["tokenshare-worker"]["metrics_path"] == "/metrics"
    assert "/metrics" in served_routes()["worker"]
    assert set(config["rule_files"]) <= set(bind_mounts(SERVICES["prometheus"]))
    rules = yaml_docs(DEPLOY / "prometheus" / "rules.yml")[0]
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs
    for expr in exprs:
        assert set(re.findall(r"tokenshare_\w+", expr)) <= exported_metrics(), expr


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def targets(datasource_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == datasource_type
    ]


def test_dashboard_panels_and_datasources() -> None:
    provisioned = yaml_docs(DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml")
    uids = {ds["uid"]: ds["type"] for ds in provisioned[0]["datasources"]}
    assert "grafana-clickhouse-datasource" in uids.values()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            ds = target["datasource"]
            assert uids.get(ds["uid"]) == ds["type"], panel["title"]
    sql = " ".join(t["rawSql"] for _, t in targets("grafana-clickhouse-datasource"))
    for source in ("tokenshare.weekly_shares", "tokenshare.rolling_shares"):
        assert source in sql
    assert "tokenshare.crossovers" in sql and "tokenshare.alerts" in sql
    promql = " ".join(t["expr"] for _, t in targets("prometheus"))
    assert "rate(tokenshare_events_total" in promql and "tokenshare_consumer_lag" in promql
    assert set(re.findall(r"tokenshare_\w+", promql)) <= exported_metrics()
    # Provisioning loads the dashboards from where compose mounts them.
    providers = yaml_docs(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    path = providers[0]["providers"][0]["options"]["path"]
    assert bind_mounts(SERVICES["grafana"])[path] == DASHBOARD.parent
    plugins = SERVICES["grafana"]["environment"]["GF_PLUGINS_PREINSTALL"]
    assert "grafana-clickhouse-datasource" in plugins


FROM_DATE, TO_DATE = "2023-01-01", "2030-12-31"
MACROS = {
    # Grafana ClickHouse plugin macros, expanded as the plugin does for a range.
    r"\$__dateFilter\((\w+)\)": rf"\1 >= toDate('{FROM_DATE}') AND \1 <= toDate('{TO_DATE}')",
    r"\$__timeFilter\((\w+)\)": r"\1 >= toDateTime(1672531200) AND \1 <= toDateTime(1924991999)",
}


def expand(sql: str, variables: dict[str, str], database: str) -> str:
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}}}", value).replace(f"${name}", value)
    for pattern, replacement in MACROS.items():
        sql = re.sub(pattern, replacement, sql)
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return re.sub(r"\btokenshare\.", f"{database}.", sql)


def test_dashboard_clickhouse_queries_run(ch_client: Client, migrated: str) -> None:
    message = SourceMessage("events", 0, 0, encode([event(i) for i in range(300)]))
    batches = Enricher(Catalog.load(), 1 << 20).process([message]).rows
    assert RawEventWriter(ch_client, migrated).write(batches) == 300
    write_alerts(ch_client, migrated, [AlertMessage.model_validate(crossover_alert())])

    variables = dashboard()["templating"]["list"]
    (dimension,) = [v for v in variables if v["name"] == "dimension"]
    choices = [o["value"] for o in dimension["options"]]
    assert dimension["current"]["value"] in choices
    results = {}
    for title, target in targets("grafana-clickhouse-datasource"):
        # Every choice of the variable, so each one's query is known to run.
        for choice in choices if "dimension" in target["rawSql"] else choices[:1]:
            sql = expand(target["rawSql"], {"dimension": choice}, migrated)
            results[title, choice] = ch_client.query(sql).result_rows
    weekly = results["Weekly token share by origin bloc", choices[0]]
    assert weekly and {row[1] for row in weekly} >= {"China", "US"}
    for week in {row[0] for row in weekly}:
        assert math.isclose(sum(r[2] for r in weekly if r[0] == week), 1.0, rel_tol=1e-9)
    for choice in choices:
        assert results[next(t for t, _ in results if t.startswith("Rolling")), choice]
    (crossover,) = results["Crossovers", choices[0]]
    assert ("China", "US") in [crossover[5:7]]


# --- Kubernetes ----------------------------------------------------------------------


def test_k8s_manifests_are_complete_objects() -> None:
    docs = k8s_manifests()
    assert docs
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc.get("metadata", {}).get("name"), path
    kustomization = yaml_docs(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The Secret is a template: created out of band, never applied from the repository.
    assert listed == on_disk - {"secret.example.yaml"}
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    for wanted in [
        ("Deployment", "tokenshare-worker"), ("Deployment", "tokenshare-store"),
        ("Deployment", "tokenshare-ingest"), ("Service", "tokenshare-ingest"),
        ("ConfigMap", "tokenshare-config"), ("HorizontalPodAutoscaler", "tokenshare-worker"),
        ("Job", "tokenshare-topics"),
    ]:  # fmt: skip
        assert wanted in kinds, wanted


def test_k8s_pods_are_wired_to_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = check_settings_env(dict(CONFIG_MAP), monkeypatch)
    assert settings.replication_factor == 3
    # A DSN carries a password: it belongs in the Secret, never in the ConfigMap.
    assert "TOKENSHARE_CLICKHOUSE_DSN" not in CONFIG_MAP
    for name, pod in pod_specs():
        for c in containers(pod):
            where = f"{name}/{c['name']}"
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] == "tokenshare-config", where
            for var in c.get("env", []):
                if var["name"].startswith("TOKENSHARE_"):
                    assert var["name"] in SETTINGS_ENV, f"{where}: {var['name']}"
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET["metadata"]["name"], where
                    assert ref["key"] in SECRET["stringData"], f"{where}: {ref['key']}"
    for kind, doc in [(d["kind"], d) for _, d in k8s_manifests()]:
        if kind == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_worker_probes_and_autoscaling() -> None:
    pod = manifest("Deployment", "tokenshare-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    probe = worker["readinessProbe"]["httpGet"]
    assert probe["path"] in ("/readyz", "/stats")
    assert ports[probe["port"]] == int(CONFIG_MAP["TOKENSHARE_WORKER_WEB_PORT"]) == 6066
    scrape = manifest("Deployment", "tokenshare-worker")["spec"]["template"]["metadata"]
    assert scrape["annotations"]["prometheus.io/port"] == "6066"
    assert scrape["annotations"]["prometheus.io/path"] in served_routes()["worker"]

    hpa = manifest("HorizontalPodAutoscaler", "tokenshare-worker")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "tokenshare-worker",
    }  # fmt: skip
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # More workers than partitions would sit idle.
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= int(CONFIG_MAP["TOKENSHARE_PARTITIONS"])

    store = manifest("Deployment", "tokenshare-store")["spec"]["template"]["spec"]["containers"][0]
    query_port = Settings.model_fields["store_query_port"].default
    # The store's endpoints are on loopback: its probes must run inside the pod.
    assert f"127.0.0.1:{query_port}/" in " ".join(store["readinessProbe"]["exec"]["command"])

    service = manifest("Service", "tokenshare-ingest")["spec"]
    ingest = manifest("Deployment", "tokenshare-ingest")["spec"]["template"]
    assert service["selector"].items() <= ingest["metadata"]["labels"].items()
    ingest_ports = {p["name"] for p in ingest["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= ingest_ports


def test_k8s_topics_job_pins_min_isr_on_every_topic() -> None:
    job = manifest("Job", "tokenshare-topics")["spec"]["template"]["spec"]
    assert [c["command"] for c in job["initContainers"]] == [["tokenshare", "topics"]]
    (config,) = job["containers"]
    script = config["args"][0]
    assert "min.insync.replicas=2" in script
    assert topic_loop(script) == tokenshare_topic_suffixes()


# --- capacity plan -------------------------------------------------------------------


def markdown_table(text: str, name: str) -> list[list[str]]:
    block = text.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_capacity_plan_arithmetic_is_consistent() -> None:
    text = (DEPLOY / "CAPACITY.md").read_text()
    assert "bench/RESULTS.md" in text  # the plan cites the benchmark's measured figures
    p = {row[0]: number(row[1]) for row in markdown_table(text, "parameters")}
    plan = markdown_table(text, "plan")
    assert [number(row[0]) for row in plan] == [10_000, 100_000, 1_000_000]
    for row in plan:
        rate, h = number(row[0]), p["headroom"]
        workers = max(2, math.ceil(rate * h / p["worker_events_per_s"]))
        stores = max(2, math.ceil(rate * h / p["store_rows_per_s"]))
        multiple = p["partition_multiple"]
        partitions = math.ceil(2 * max(workers, stores) / multiple) * multiple
        events_mb = rate * p["event_bytes"] / 1e6
        rows_mb = events_mb * p["rows_bytes_ratio"]
        replicated = (events_mb + rows_mb) * p["replication_factor"]
        brokers = max(3, math.ceil(replicated * h / p["broker_write_mb_s"]))
        lz4 = (events_mb / p["lz4_events_ratio"] + rows_mb / p["lz4_rows_ratio"]) * p[
            "replication_factor"
        ]
        brokers_lz4 = max(3, math.ceil(lz4 * h / p["broker_write_mb_s"]))
        kafka_tb = replicated * 86_400 * p["retention_days"] / 1e6
        rows_day = rate * 86_400
        gb_day = rows_day * p["clickhouse_bytes_per_row"] / 1e9
        shards = math.ceil(rate * h / p["clickhouse_rows_per_s_per_shard"])
        expected = [workers, stores, partitions, events_mb, rows_mb, replicated, brokers]
        expected += [brokers_lz4, kafka_tb, rows_day, gb_day, shards]
        for header_index, (cell, value) in enumerate(zip(row[1:], expected, strict=True)):
            assert math.isclose(number(cell), round(value, 2), abs_tol=0.051), (
                f"CAPACITY.md plan row {row[0]}, column {header_index + 2}: "
                f"{cell} but the parameters give {value}"
            )
        assert partitions >= max(workers, stores)  # every consumer gets a partition
    # The deployments follow the plan: compose is sized for 10k/s, k8s for 100k/s.
    assert resolve(SERVICES["worker"]["environment"]["TOKENSHARE_PARTITIONS"]) == plan[0][3]
    assert CONFIG_MAP["TOKENSHARE_PARTITIONS"] == plan[1][3]
