"""The worker's Prometheus metrics: per-batch counting, the share stage at scrape time."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import event
from tokenshare.schema.catalog import UNIDENTIFIED, Catalog
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.metrics import (
    MAX_TOKEN_SERIES,
    OTHER,
    IngestMetrics,
    ShareCollector,
    exposition,
)
from tokenshare.streams.shares.service import ShareService


def samples(
    metrics: IngestMetrics, accept: str | None = None
) -> dict[tuple[str, tuple[Any, ...]], float]:
    body, _ = exposition(metrics.registry, accept)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_a_batch_is_counted_by_model_provider_and_bloc() -> None:
    catalog = Catalog.load()
    docs = [event(i, seed=7) for i in range(300)]
    messages = [SourceMessage("events", i % 3, i, orjson.dumps(d)) for i, d in enumerate(docs)]
    messages.append(SourceMessage("events", 0, 999, b"not json"))
    result = Enricher(catalog, 1 << 20).process(messages)
    metrics = IngestMetrics()
    metrics.record(len(messages), result.valid, len(result.dead_letters), result.rows, seconds=0.02)
    got = samples(metrics)

    expected: Counter[tuple[str, str, str, str]] = Counter()
    for d in docs:
        info = catalog.lookup(d["model"])
        model = info.model if info.identified else UNIDENTIFIED
        expected[(model, d["provider"], info.origin_bloc, "prompt")] += d["prompt_tokens"]
        expected[(model, d["provider"], info.origin_bloc, "completion")] += d["completion_tokens"]
    tokens = {
        (dict(labels)["model"], dict(labels)["provider"], dict(labels)["origin_bloc"],
         dict(labels)["kind"]): value
        for (name, labels), value in got.items()
        if name == "tokenshare_tokens_total"
    }  # fmt: skip
    assert tokens == expected
    assert UNIDENTIFIED in {m for m, *_ in tokens}  # the made-up model of the factory
    assert got[("tokenshare_events_total", ())] == 300
    assert got[("tokenshare_messages_total", ())] == 301
    assert got[("tokenshare_dead_letters_total", ())] == 1
    assert got[("tokenshare_batch_duration_seconds_count", ())] == 1
    assert not [name for name, _ in got if name.endswith("_created") or "per_second" in name]


def test_token_series_are_bounded() -> None:
    metrics = IngestMetrics()
    for i in range(MAX_TOKEN_SERIES + 5):
        assert metrics._bounded((f"m{i}", "p", "b")) == (
            (f"m{i}", "p", "b") if i < MAX_TOKEN_SERIES else (OTHER, OTHER, OTHER)
        )
    assert metrics._bounded(("m1", "p", "b")) == ("m1", "p", "b")  # a known one stays


def test_share_stage_is_read_at_scrape_time() -> None:
    stats = SimpleNamespace(
        alerts=3, ticks=40, failed_ticks=1,
        current={
            "a": {"measure": "tokens", "window_kind": "iso_week", "dimension": "origin_bloc",
                  "values": [{"value": "China", "share": 0.52}, {"value": "US", "share": 0.41}]},
            "b": {"measure": "requests", "window_kind": "iso_week", "dimension": "origin_bloc",
                  "values": [{"value": "China", "share": 0.9}]},
        },
    )  # fmt: skip
    webhook = SimpleNamespace(stats=SimpleNamespace(delivered=2, failed=1, dropped=0))
    shares = cast(ShareService, SimpleNamespace(stats=stats, webhook=webhook))
    metrics = IngestMetrics()
    metrics.registry.register(ShareCollector(shares, lambda: True))
    got = samples(metrics)
    ratio = {
        dict(labels)["value"]: v
        for (name, labels), v in got.items()
        if name == "tokenshare_share_ratio"
    }
    assert ratio == {"China": 0.52, "US": 0.41}  # tokens only
    assert got[("tokenshare_alerts_total", ())] == 3
    assert got[("tokenshare_webhook_deliveries_total", (("outcome", "failed"),))] == 1
    assert got[("tokenshare_share_leader", ())] == 1
    stats.alerts = 4  # read again at the next scrape, not copied
    assert samples(metrics)[("tokenshare_alerts_total", ())] == 4


def test_openmetrics_when_asked() -> None:
    body, content_type = exposition(IngestMetrics().registry, "application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    body, content_type = exposition(IngestMetrics().registry, None)
    assert content_type.startswith("text/plain") and b"tokenshare_events_total 0.0" in body
