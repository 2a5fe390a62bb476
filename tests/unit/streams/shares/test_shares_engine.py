"""The share engine on real weekly figures: shares and crossovers equal an
independent recomputation from the source files, each alert exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from tests.weekly import CHINA, RULES, WEEKLY, recompute
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.schema.catalog import Catalog
from tokenshare.streams.shares.config import RulesConfig
from tokenshare.streams.shares.engine import ShareEngine
from tokenshare.streams.shares.windows import DaySums


def day_sums() -> DaySums:
    catalog = Catalog.load()
    sums = DaySums()
    latest = None
    for e in replay_events(load_week_totals(WEEKLY)):
        ts = datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00"))
        tokens = int(str(e["prompt_tokens"])) + int(str(e["completion_tokens"]))
        bloc = catalog.lookup(str(e["model"])).origin_bloc
        sums.add("origin_bloc", bloc, ts.date(), (tokens, 0, 0, 1, 0))
        latest = ts if latest is None else max(latest, ts)
    sums.max_ts = latest
    return sums


def test_china_us_crossovers_match_the_recomputation_once_each() -> None:
    expected = recompute()
    assert expected[0][:2] == ("2026-W07", "China>US")  # the week of 9-15 Feb 2026
    engine = ShareEngine(RulesConfig.model_validate(RULES))
    result = engine.tick(day_sums(), now=datetime(2026, 6, 1, tzinfo=UTC))
    newest = max(result.snapshots, key=lambda s: s.window_start).window_label
    final = [a for a in result.alerts if a.rule == "crossover" and a.status == "final"]
    assert [(a.window.label, a.subject) for a in final] == [
        (w, s) for w, s, _, _ in expected if w != newest
    ]
    # The newest week is still open (the watermark has not passed it): provisional only.
    provisional = [a for a in result.alerts if a.status == "provisional"]
    assert [(a.window.label, a.subject) for a in provisional] == [
        (w, s) for w, s, _, _ in expected if w == newest
    ]
    for alert, (_, _, cn, us) in zip(final, expected, strict=True):
        after = alert.details["share_after"]
        assert after["China"] == pytest.approx(cn, abs=1e-6)
        assert after["US"] == pytest.approx(us, abs=1e-6)
        assert alert.details["margin_pp"] == pytest.approx(abs(cn - us) * 100, abs=1e-4)
    # Nothing fires twice: not on the next tick, not after a restart that reads the ledger.
    engine.remember(a.alert_id for a in result.alerts)
    assert engine.tick(day_sums()).alerts == []
    restarted = ShareEngine(RulesConfig.model_validate(RULES))
    restarted.remember(a.alert_id for a in result.alerts)
    assert [a for a in restarted.tick(day_sums()).alerts if a.status == "final"] == []


def test_weekly_shares_equal_the_source_figures() -> None:
    engine = ShareEngine(RulesConfig.model_validate(RULES))
    result = engine.tick(day_sums(), now=datetime(2026, 6, 1, tzinfo=UTC))
    snaps = {
        (s.window_label, s.final): s
        for s in result.snapshots
        if s.dimension == "origin_bloc" and s.measure == "tokens"
    }
    assert snaps, "snapshots of the open and the latest closed window"
    doc = orjson.loads(sorted(WEEKLY.glob("*.json"))[-1].read_bytes())
    total = sum(m["total_tokens"] for m in doc["models"])
    china = sum(m["total_tokens"] for m in doc["models"] if m["slug"].split("/")[0] in CHINA)
    current = next(s for (label, final), s in snaps.items() if not final)
    share = {v.value: v.share for v in current.values}
    assert share["China"] == pytest.approx(china / total, abs=1e-6)


def test_published_alerts_and_snapshots_follow_their_contracts() -> None:
    from tokenshare.schema.outputs import AlertMessage, ShareSnapshot
    from tokenshare.streams.shares.config import load_rules

    result = ShareEngine(load_rules()).tick(day_sums(), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert result.alerts and result.snapshots
    for alert in result.alerts:
        message = alert.message()
        assert AlertMessage.decode(message.encode()) == message
        assert (message.alert_id, message.window, message.window_label) == (
            alert.alert_id,
            alert.window,
            alert.window.label,
        )
    for snap in result.snapshots:
        assert ShareSnapshot.decode(snap.encode()) == snap
    # A label that does not name the window breaks the contract.
    doc = orjson.loads(result.alerts[0].message().encode())
    with pytest.raises(ValueError, match="does not name the window"):
        AlertMessage.decode(orjson.dumps({**doc, "window_label": "1999-W01"}))
