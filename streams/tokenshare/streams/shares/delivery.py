"""Where alerts go besides the alerts topic: every destination the settings name.

``Delivery.from_settings(settings)`` builds one destination per URL that is set:

- ``alert_webhook_url``: the alert's JSON message (`webhook.Webhook`);
- ``slack_webhook_url``: a Slack-compatible ``{"text": ...}`` (`slack.SlackWebhook`);
- ``alertmanager_url``: Prometheus Alertmanager's v2 API (`alertmanager.Alertmanager`).

``submit`` hands an alert to each of them and returns at once; each destination
has its own queue and retries, so a slow or broken one delays none of the
others, nor the share stage. The alerts topic stays the record of what fired:
a destination that gave up counts it (``stats.failed``) and logs it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from mode import Service, ServiceT

from tokenshare.settings import Settings
from tokenshare.streams.shares.alertmanager import Alertmanager
from tokenshare.streams.shares.slack import SlackWebhook
from tokenshare.streams.shares.webhook import Alert, Webhook, WebhookStats, as_message

_ANY_INTERFACE = ("", "0.0.0.0", "::")


def generator_url(settings: Settings) -> str:
    """The worker page listing recent alerts: Alertmanager's link back to the source."""
    host = settings.worker_web_bind
    if host in _ANY_INTERFACE:
        host = socket.getfqdn()
    return f"http://{host}:{settings.worker_web_port}/alerts"


class Delivery(Service):
    def __init__(self, destinations: Iterable[Webhook], **kwargs: Any) -> None:
        self.destinations = [d for d in destinations if d.url]
        super().__init__(**kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Delivery:
        """One destination per URL set; ``options`` (attempts, delays, queue size,
        timeout) apply to each."""
        return cls(
            [
                Webhook(settings.alert_webhook_url, **options),
                SlackWebhook(settings.slack_webhook_url, **options),
                Alertmanager(
                    settings.alertmanager_url, generator_url=generator_url(settings), **options
                ),
            ]
        )

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        return self.destinations

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for every destination; never blocks, never raises for a
        destination's sake (a dict that is not an alert message raises ValueError)."""
        if not self.destinations:
            return
        message = as_message(alert)
        for destination in self.destinations:
            destination.submit(message)

    @property
    def stats(self) -> WebhookStats:
        """Counts over every destination (the worker's /stats shows them)."""
        total = WebhookStats()
        for destination in self.destinations:
            total.add(destination.stats)
        return total

    def by_destination(self) -> dict[str, WebhookStats]:
        return {d.destination: d.stats for d in self.destinations}
