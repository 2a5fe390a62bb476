"""Alerts as Slack incoming-webhook messages: ``{"text": ...}`` in Slack's mrkdwn.

A ``text`` field alone is what every Slack-compatible receiver reads (Slack,
Mattermost, Rocket.Chat, Zulip's Slack integration), so the message is one
text: an icon for the severity, the alert's line in bold, why it fired, and
the rule, dimension, window and status in italics. Slack's three control
characters are escaped (``&``, ``<``, ``>``), so a subject like ``China>US``
is shown as written and no text can turn into a link or a mention.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from tokenshare.schema.outputs import AlertMessage
from tokenshare.streams.shares.webhook import Alert, Webhook, as_message

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def escape(text: str) -> str:
    """Slack's escaping of message text (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(message: AlertMessage) -> str:
    lines = [f"{ICONS[message.severity]} *{escape(message.text)}*"]
    if message.explanation and message.explanation != message.text:
        lines.append(escape(message.explanation))
    where = f"{message.dimension} by {message.measure}" if message.dimension != "input" else "input"
    lines.append(
        f"_{escape(message.rule)} · {escape(where)} · {escape(message.window_label)} "
        f"({escape(message.status)}) · {escape(message.alert_id)}_"
    )
    return "\n".join(lines)


def slack_payload(message: AlertMessage) -> dict[str, Any]:
    return {"text": slack_text(message)}


class SlackWebhook(Webhook):
    """Posts each alert to a Slack (or Slack-compatible) incoming-webhook URL."""

    destination: ClassVar[str] = "Slack webhook"

    def body(self, alerts: list[Alert]) -> bytes:
        (alert,) = alerts
        return orjson.dumps(slack_payload(as_message(alert)))
