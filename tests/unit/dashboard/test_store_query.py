"""The dashboard reads through the running store only: with no store it says so, and
it never takes the embedded data path itself (it would keep the store from starting),
even where the environment asks readers to go offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenshare.cli.dashboard import store_query
from tokenshare.settings import Settings
from tokenshare.sinks.owner import OwnerLock, data_path_of, lock_path, read_owner
from tokenshare.sinks.query import StoreNotServing


@pytest.mark.usefixtures("no_tokenshare_env")
def test_no_store_means_store_down_and_the_data_path_stays_free(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, clickhouse_dsn=f"chdb://{tmp_path / 'clickhouse'}", query_offline=True
    )
    query = store_query(settings)
    with pytest.raises(StoreNotServing, match="no store runs"):
        query("SELECT 1", {})
    data_path = data_path_of(settings.dsn)
    assert not data_path.exists() and read_owner(data_path) is None
    # A store starting now finds the path free, and while it holds the lock without
    # serving queries yet, the dashboard waits for it rather than opening the engine.
    lock = OwnerLock(data_path)
    lock.acquire()
    try:
        assert lock_path(data_path).exists()
        with pytest.raises(StoreNotServing, match="serves no SQL"):
            query("SELECT 1", {})
    finally:
        lock.release()
