"""What every test may use: the test process's embedded ClickHouse engine, a migrated
database, and the hypothesis profiles. Broker fixtures live in tests/integration/conftest.py.

The folder says what a test needs: everything under tests/integration/ is marked
`integration` here (real processes: the Kafka broker, tokenshare's own commands), and a
test under tests/unit/ that asks for the broker, or is marked integration by hand, stops
the collection, so the folders and the marker cannot drift apart."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import settings as hypothesis_settings

from tests.chdb import empty
from tests.factories import unique
from tokenshare.localstack.tls import make_ca
from tokenshare.sinks.clickhouse import migrate

TESTS = Path(__file__).parent
UNIT = TESTS / "unit"
INTEGRATION = TESTS / "integration"
BROKER_FIXTURES = {"kafka"}

# `max_examples` of every property test comes from the profile (expensive tests take a
# fraction of it): "fast", the default, keeps `make unit` under a minute; "ci" (set by
# `make test`) draws five times as many.
hypothesis_settings.register_profile("ci", max_examples=200, deadline=None)
hypothesis_settings.register_profile("fast", max_examples=40, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
        elif not item.path.is_relative_to(UNIT):
            misplaced.append(f"{item.nodeid}: neither under tests/unit/ nor tests/integration/")
        elif BROKER_FIXTURES & set(item.fixturenames):
            misplaced.append(f"{item.nodeid}: uses the broker: move it to tests/integration/")
        elif item.get_closest_marker("integration"):
            misplaced.append(f"{item.nodeid}: marked integration: move it to tests/integration/")
    if misplaced:
        raise pytest.UsageError("\n".join(misplaced))


@pytest.fixture
def no_tokenshare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test alone, not from the developer's environment."""
    for name in list(os.environ):
        if name.startswith("TOKENSHARE_") and name not in ("TOKENSHARE_CACHE",):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that has nothing to do with any broker."""
    return make_ca(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test process's one embedded-engine path (chDB opens one path per process)."""
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture(scope="session")
def ch_client(chdb_path: Path) -> Iterator[Client]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    yield client
    client.close()


@pytest.fixture
def database(ch_client: Client) -> Iterator[str]:
    """A fresh database name in the test process's engine (created by the test)."""
    name = unique("db_")
    yield name
    ch_client.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="session")
def _migrated_once(ch_client: Client) -> Iterator[str]:
    name = unique("migrated_")
    migrate(ch_client, name)
    yield name
    ch_client.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def migrated(ch_client: Client, _migrated_once: str) -> str:
    """A migrated database holding no rows, for tests that write and read but do not
    change the schema: the session's one migrated database, emptied (a migration takes
    a quarter of a second, emptying a few milliseconds)."""
    empty(ch_client, _migrated_once)
    return _migrated_once


# chDB's engine sometimes crashes in its own global destructors at interpreter exit
# ("Exception in global_context->shutdown()", then SIGSEGV), after every test has run
# and the summary is written; the run would then exit 139 whatever its result. So
# the main pytest process ends itself with the run's own exit status once pytest is
# done (xdist workers are left to exit normally: their controller reads their results).
_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _exit_status and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
