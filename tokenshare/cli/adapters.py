"""The adapters' command: `tokenshare ingest-http`."""

from __future__ import annotations

import click

from tokenshare.cli.context import Context, console, fail


@click.command("ingest-http")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Run without a bearer token (loopback addresses only; for local use).",
)
@click.pass_obj
def ingest_http(ctx: Context, host: str, port: int, insecure_no_auth: bool) -> None:
    """HTTP ingest for gateways that cannot speak Kafka.

    POST /v1/events takes one event or a JSON array (202 all accepted, 207 some,
    400 none); POST /v1/traces and /v1/metrics take OTLP/HTTP (protobuf or
    JSON) and count GenAI spans and gen_ai.client.token.usage (/v1/otlp/v1/traces
    still takes traces). Answers come after Kafka acknowledged. Requests carry
    `Authorization: Bearer $TOKENSHARE_INGEST_TOKEN`. GET /healthz, /readyz,
    /stats, /metrics (Prometheus). SIGTERM stops gracefully: requests in flight
    finish, the producer is flushed.
    """
    import logging

    from kafka.errors import KafkaError

    from tokenshare.producers.adapters.http_ingest import ConfigError, resolve_token, serve
    from tokenshare.streams.topics import ensure_topics

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = ctx.settings()
    try:
        token = resolve_token(settings, insecure_no_auth=insecure_no_auth, host=host)
    except ConfigError as exc:
        fail(str(exc), exc.hint)
        return
    try:
        ensure_topics(settings)
    except KafkaError as exc:
        console.print(
            f"[yellow]warning:[/] could not check the topics at {settings.kafka_bootstrap} "
            f"({exc}); /readyz answers once Kafka is reachable"
        )
    auth = "bearer token" if token else "[bold red]NONE (--insecure-no-auth)[/]"
    console.print(f"ingest-http on http://{host}:{port} -> {settings.events_topic}; auth: {auth}")
    serve(settings, host=host, port=port, token=token)
