"""Follow the alerts topic and print each alert as it fires."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tokenshare import kafka_clients
from tokenshare.schema.outputs import AlertMessage
from tokenshare.settings import Settings

STATUS_STYLE = {"final": "bold magenta", "provisional": "yellow", "late_correction": "red"}


def describe(alert: AlertMessage) -> str:
    style = STATUS_STYLE.get(alert.status, "white")
    return f"[{style}]ALERT {alert.status}[/] {alert.text}"


class AlertFeed:
    """A background reader of the alerts topic; `show` decides what is printed."""

    def __init__(self, settings: Settings, on_alert: Callable[[AlertMessage], None]) -> None:
        self.settings = settings
        self.on_alert = on_alert
        self.seen = 0
        self.last_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)

    def start(self) -> AlertFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = kafka_clients.consumer(
            self.settings,
            self.settings.alerts_topic,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        try:
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self.seen += 1
                        self.last_at = time.monotonic()
                        self.on_alert(AlertMessage.decode(record.value))
        finally:
            consumer.close()

    def quiet_for(self, seconds: float) -> bool:
        return time.monotonic() - self.last_at >= seconds

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
