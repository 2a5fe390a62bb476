"""Alerts to Prometheus Alertmanager, through its v2 API (``POST /api/v2/alerts``).

Alertmanager then does what teams configure there: routing on labels, grouping,
inhibition, silences, and its own receivers (Slack, PagerDuty, e-mail...).

Alertmanager identifies an alert by its label set, so the labels name the finding
(rule, dimension, measure, subject, window) and leave out what changes as the
window closes: a provisional alert and the final one about the same finding
update one Alertmanager alert, whose annotations carry the latest text and
status. A market shift is an event, not a lasting condition: each alert is
posted with ``endsAt`` = ``startsAt`` + ``resolve_after`` (a day by default), after
which Alertmanager resolves it by itself; nothing has to re-send it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from tokenshare.schema.outputs import AlertMessage
from tokenshare.streams.shares.webhook import Alert, Webhook, as_message

API_PATH = "/api/v2/alerts"
RESOLVE_AFTER = timedelta(days=1)


def alertname(rule: str) -> str:
    """``crossover`` -> ``TokenshareCrossover``, ``catalog_gap`` -> ``TokenshareCatalogGap``."""
    return "Tokenshare" + "".join(part.capitalize() for part in rule.split("_"))


def labels(message: AlertMessage) -> dict[str, str]:
    """The labels a route, a group or a silence matches on."""
    return {
        "alertname": alertname(message.rule),
        "service": "tokenshare",
        "rule": message.rule,
        "kind": message.kind,
        "severity": message.severity,
        "dimension": message.dimension,
        "measure": message.measure,
        "subject": message.subject,
        "window": message.window_label,
        "window_kind": message.window_kind,
    }


def postable_alert(
    message: AlertMessage,
    *,
    now: datetime,
    resolve_after: timedelta = RESOLVE_AFTER,
    generator_url: str | None = None,
) -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` body (Alertmanager's ``postableAlert``)."""
    annotations = {
        "summary": message.text,
        "description": message.explanation or message.text,
        "alert_id": message.alert_id,
        "status": message.status,
        "window_start": message.window_start.isoformat(),
        "window_end": message.window_end.isoformat(),
        "details": orjson.dumps(message.details, option=orjson.OPT_SORT_KEYS).decode(),
    }
    alert: dict[str, Any] = {
        "labels": labels(message),
        "annotations": annotations,
        "startsAt": now.isoformat(),
        "endsAt": (now + resolve_after).isoformat(),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


class Alertmanager(Webhook):
    """Posts alerts, up to 64 in one request, to ``<url>/api/v2/alerts``.

    ``url`` is Alertmanager's base URL (``http://alertmanager:9093``, or with the
    path prefix of ``--web.route-prefix``)."""

    destination: ClassVar[str] = "Alertmanager"
    batch_max: ClassVar[int] = 64

    def __init__(
        self,
        url: str | None,
        *,
        generator_url: str | None = None,
        resolve_after: timedelta = RESOLVE_AFTER,
        **kwargs: Any,
    ) -> None:
        self.generator_url = generator_url
        self.resolve_after = resolve_after
        super().__init__(url, **kwargs)

    @property
    def endpoint(self) -> str:
        assert self.url is not None
        return self.url.rstrip("/") + API_PATH

    def body(self, alerts: list[Alert]) -> bytes:
        now = datetime.now(UTC)
        return orjson.dumps(
            [
                postable_alert(
                    as_message(a),
                    now=now,
                    resolve_after=self.resolve_after,
                    generator_url=self.generator_url,
                )
                for a in alerts
            ]
        )
