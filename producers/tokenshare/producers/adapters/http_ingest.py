"""`tokenshare ingest-http`: an HTTP endpoint for gateways that cannot speak Kafka.

Routes:

- ``POST /v1/events``: one event object or an array of them (the contract of
  ``schema/event.py``). 202 when every event is valid, 207 when some are (the
  valid ones are accepted; each rejected index is listed with its reason), 400
  when none is.
- ``POST /v1/traces`` and ``POST /v1/metrics``: OTLP/HTTP, protobuf
  (``application/x-protobuf``, the SDKs' default) or JSON, gzip or not, on
  OTLP's standard paths: point an exporter at the endpoint's base URL with
  ``OTEL_EXPORTER_OTLP_ENDPOINT=<base>``. GenAI spans, and the delta
  ``gen_ai.client.token.usage`` histogram, become events (``otel.py``); the
  answer is OTLP's export response (``partialSuccess``), in the request's
  encoding. ``/v1/otlp/v1/traces``, the former path, still takes traces.
- ``GET /healthz`` (the process lives), ``GET /readyz`` (connected to Kafka and
  not shutting down), ``GET /stats`` (counters, JSON), ``GET /metrics`` (the
  same counters and request times for Prometheus; ``http_metrics.py``).

Durability: a success status is sent only after Kafka acknowledged every
accepted event of the request (acks=all, idempotent producer). The valid events
of a request travel as one JSON-array message keyed by the first event id,
exactly as batched producers send them. On a timeout or a broker error the
answer is 503 and the gateway should retry the same request: the store keeps
one row per event id, so a retry that overlaps an earlier partial delivery
does not count twice.

Authentication: ``Authorization: Bearer <TOKENSHARE_INGEST_TOKEN>``, compared
in constant time. Without a token the endpoint starts only with
``--insecure-no-auth``, and then only on a loopback address.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web

from tokenshare import kafka_clients
from tokenshare.producers.adapters.http_metrics import HttpMetrics
from tokenshare.producers.adapters.intake import BadBody, parse_events
from tokenshare.producers.adapters.intake import pack as pack_messages
from tokenshare.producers.adapters.otel import (
    MetricsBatch,
    OtlpBatch,
    OtlpError,
    export_response,
    export_response_proto,
    metrics_response,
    metrics_response_proto,
    parse_export_json,
    parse_metrics_json,
    parse_metrics_proto,
    parse_traces_proto,
)
from tokenshare.retry import RetryPolicy, async_retrying
from tokenshare.schema.event import EventFields
from tokenshare.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/v1/events"
OTLP_TRACES_PATH = "/v1/traces"
OTLP_METRICS_PATH = "/v1/metrics"
#: Where the traces route was before it moved to OTLP's standard path.
OTLP_TRACES_ALIAS = "/v1/otlp/v1/traces"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
MIN_TOKEN_LENGTH = 16
_RETRY_AFTER_S = "5"
#: Pauses between attempts to connect to Kafka at start-up.
CONNECT_RETRY = RetryPolicy(first_s=0.5, max_s=15.0)
# google.rpc.Code values for OTLP error bodies (google.rpc.Status).
_GRPC_CODE = {400: 3, 401: 16, 413: 3, 415: 3, 503: 14}


class ConfigError(ValueError):
    """The endpoint cannot start as configured; `hint` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Unavailable(RuntimeError):
    """Kafka did not take the events; the client should retry."""


def resolve_token(settings: Settings, *, insecure_no_auth: bool, host: str) -> str | None:
    """The bearer token to require, None for no authentication, or ConfigError."""
    secret = settings.ingest_token.get_secret_value() if settings.ingest_token else None
    if secret is not None:
        if secret and set(secret) == {"*"}:
            raise ConfigError(
                "TOKENSHARE_INGEST_TOKEN holds a masked value ('*****'), not a secret",
                "pass the real token in the environment of this process",
            )
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"TOKENSHARE_INGEST_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters",
                "use a random secret, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
            )
        if insecure_no_auth:
            log.warning("--insecure-no-auth ignored: TOKENSHARE_INGEST_TOKEN is set")
        return secret
    if not insecure_no_auth:
        raise ConfigError(
            "no ingest token configured: the endpoint does not run unauthenticated",
            "set TOKENSHARE_INGEST_TOKEN to a random secret of 16+ characters, "
            "or pass --insecure-no-auth for local use on a loopback address",
        )
    if not _is_loopback(host):
        raise ConfigError(
            f"--insecure-no-auth on {host}: anyone who can reach it could write events",
            "bind 127.0.0.1 (the default), or set TOKENSHARE_INGEST_TOKEN",
        )
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class IngestStats:
    requests: int = 0
    unauthorized: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    otlp_requests: int = 0
    spans: int = 0
    spans_ignored: int = 0  # no gen_ai attributes
    spans_skipped: int = 0  # GenAI spans without usage
    spans_aggregate: int = 0  # agent and tool spans
    spans_rejected: int = 0
    otlp_metrics_requests: int = 0
    data_points: int = 0  # gen_ai.client.token.usage points
    data_points_rejected: int = 0
    data_points_ignored: int = 0  # other metrics
    kafka_messages: int = 0
    kafka_failures: int = 0


class Ingest:
    """The endpoint's state: the Kafka producer, the token, the counters."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._token = token.encode() if token is not None else None
        self._producer: Any = None
        self._connecting: asyncio.Task[None] | None = None
        self._draining = False

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background: liveness answers at once, readiness once connected."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        """Retry until connected (close() cancels it): the endpoint may start before Kafka."""
        s = self.settings
        async for attempt in async_retrying(
            CONNECT_RETRY,
            on=Exception,
            log=log,
            what=f"cannot reach Kafka at {s.kafka_bootstrap}",
            hint="Start the broker (`tokenshare stack up`) or set TOKENSHARE_KAFKA_BOOTSTRAP",
        ):
            with attempt:
                producer = kafka_clients.aio_producer(
                    s,
                    client_id=f"{s.worker_id}-ingest-http",
                    linger_ms=5,
                    # One request's events are one message, up to the worker's limit.
                    max_request_size=s.max_message_bytes + 64 * 1024,
                    request_timeout_ms=int(min(s.ingest_ack_timeout_s, 30) * 1000),
                )
                try:
                    await producer.start()
                except BaseException:  # a failed start, or shut down while connecting
                    await _quietly(producer.stop)
                    raise
        self._producer = producer
        log.info("connected to Kafka at %s", s.kafka_bootstrap)

    def begin_drain(self) -> None:
        """Shutting down: not ready any more; requests in flight still finish."""
        self._draining = True

    async def close(self) -> None:
        """Flush what was sent and stop the producer (after in-flight requests)."""
        self._draining = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._producer is not None:
            await _quietly(self._producer.flush)
            await _quietly(self._producer.stop)
            self._producer = None

    @property
    def ready(self) -> bool:
        return self._producer is not None and not self._draining

    @property
    def draining(self) -> bool:
        return self._draining

    # requests --------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self._token)

    async def publish(self, events: Sequence[EventFields]) -> None:
        """Send `events` and wait for every acknowledgement, or raise Unavailable."""
        if not events:
            return
        producer = self._producer
        if producer is None:
            raise Unavailable(f"not connected to Kafka at {self.settings.kafka_bootstrap} yet")
        messages = pack_messages(events, self.settings.max_message_bytes)
        topic = self.settings.events_topic

        async def send_all() -> None:
            pending = [await producer.send(topic, value=v, key=k) for k, v in messages]
            await asyncio.gather(*pending)

        try:
            await asyncio.wait_for(send_all(), timeout=self.settings.ingest_ack_timeout_s)
        except TimeoutError:
            self.stats.kafka_failures += 1
            raise Unavailable(
                f"Kafka did not acknowledge within {self.settings.ingest_ack_timeout_s:g}s"
            ) from None
        except Exception as exc:  # aiokafka's KafkaError and connection errors
            self.stats.kafka_failures += 1
            raise Unavailable(f"Kafka refused the events: {type(exc).__name__}: {exc}") from None
        self.stats.kafka_messages += len(messages)


async def _quietly(call: Callable[[], Awaitable[Any]]) -> None:
    try:
        await call()
    except Exception as exc:
        log.warning("while closing the Kafka producer: %s", exc)


# --- the web application ------------------------------------------------------------------

INGEST = web.AppKey("ingest", Ingest)


def create_app(settings: Settings, *, token: str | None) -> web.Application:
    """The aiohttp application; `token` None means no authentication (see resolve_token)."""
    app = web.Application(client_max_size=settings.ingest_max_body_bytes)
    ingest = app[INGEST] = Ingest(settings, token)
    metrics = HttpMetrics(lambda: asdict(ingest.stats))
    app.middlewares.append(metrics.middleware)
    app.router.add_post(EVENTS_PATH, post_events)
    app.router.add_post(OTLP_TRACES_PATH, post_otlp_traces)
    app.router.add_post(OTLP_TRACES_ALIAS, post_otlp_traces)
    app.router.add_post(OTLP_METRICS_PATH, post_otlp_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics.handler)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_startup(app: web.Application) -> None:
    await app[INGEST].start()


async def _on_shutdown(app: web.Application) -> None:
    app[INGEST].begin_drain()


async def _on_cleanup(app: web.Application) -> None:
    await app[INGEST].close()


def _json(data: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda d: orjson.dumps(d).decode()
    )


def _error(
    status: int, message: str, next_step: str, *, otlp: bool, proto: bool = False
) -> web.Response:
    """An error in the route's dialect: ``{error, next}``, or google.rpc.Status for
    OTLP, in protobuf when the request was (`proto`)."""
    headers = {"Retry-After": _RETRY_AFTER_S} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tokenshare"'
    if otlp and proto:
        status_pb = _rpc_status(_GRPC_CODE[status], f"{message}; {next_step}")
        return web.Response(body=status_pb, status=status, headers=headers, content_type=PROTOBUF)
    if otlp:
        body: dict[str, Any] = {"code": _GRPC_CODE[status], "message": f"{message}; {next_step}"}
    else:
        body = {"error": message, "next": next_step}
    return _json(body, status, headers)


def _rpc_status(code: int, message: str) -> bytes:
    """google.rpc.Status {code = 1 (int32), message = 2 (string)}, protobuf-encoded.
    Two fields, so written here rather than pulling in googleapis-common-protos."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def _read_body(request: web.Request, *, otlp: bool) -> bytes | web.Response:
    """The request body after authentication, content-type and size checks, or the
    error response to send."""
    ingest = request.app[INGEST]
    ingest.stats.requests += 1
    proto = otlp and request.content_type == PROTOBUF
    if not ingest.authorized(request):
        ingest.stats.unauthorized += 1
        return _error(
            401,
            "missing or wrong bearer token",
            "send `Authorization: Bearer <TOKENSHARE_INGEST_TOKEN>`",
            otlp=otlp,
            proto=proto,
        )
    if request.content_type not in ((JSON, PROTOBUF) if otlp else (JSON,)):
        hint = (
            f"send OTLP/HTTP as {PROTOBUF} (the default) or {JSON}"
            if otlp
            else "send a JSON event or array with `Content-Type: application/json`"
        )
        return _error(415, f"unsupported content type {request.content_type!r}", hint, otlp=otlp)
    limit = ingest.settings.ingest_max_body_bytes
    too_large = _error(
        413,
        f"request body exceeds {limit} bytes",
        "split the batch into smaller requests (or raise TOKENSHARE_INGEST_MAX_BODY_BYTES)",
        otlp=otlp,
        proto=proto,
    )
    if request.content_length is not None and request.content_length > limit:
        return too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large


async def post_events(request: web.Request) -> web.Response:
    body = await _read_body(request, otlp=False)
    if isinstance(body, web.Response):
        return body
    ingest = request.app[INGEST]
    try:
        intake = parse_events(body)
    except BadBody as exc:
        return _error(400, str(exc), "send one event object or a JSON array of events", otlp=False)
    rejected = [{"index": r.index, "error": r.error} for r in intake.rejected]
    ingest.stats.events_rejected += len(rejected)
    if not intake.events:
        refusal = {
            "accepted": 0,
            "rejected": rejected,
            "error": "no valid event in the request",
            "next": "fix the fields named in `rejected` (contract: schema/event.schema.json)",
        }
        return _json(refusal, 400)
    try:
        await ingest.publish(intake.events)
    except Unavailable as exc:
        return _error(503, str(exc), "retry the same request: events are stored once", otlp=False)
    ingest.stats.events_accepted += len(intake.events)
    return _json({"accepted": len(intake.events), "rejected": rejected}, 207 if rejected else 202)


Batch = TypeVar("Batch", OtlpBatch, MetricsBatch)


@dataclass(frozen=True, slots=True)
class OtlpSignal(Generic[Batch]):
    """What differs between OTLP's trace and metrics exports; the exchange is one."""

    request_name: str  #: what the exporter should send, for a 400's hint
    parse_proto: Callable[[bytes], Batch]
    parse_json: Callable[[bytes], Batch]
    answer_proto: Callable[[Batch], bytes]
    answer_json: Callable[[Batch], dict[str, Any]]
    count_request: Callable[[IngestStats], None]  #: every request, even a refused one
    count: Callable[[IngestStats, Batch], None]  #: what a published batch held


def _count_trace_request(s: IngestStats) -> None:
    s.otlp_requests += 1


def _count_metrics_request(s: IngestStats) -> None:
    s.otlp_metrics_requests += 1


def _count_traces(s: IngestStats, batch: OtlpBatch) -> None:
    s.spans += batch.spans
    s.spans_ignored += batch.ignored
    s.spans_skipped += batch.skipped
    s.spans_aggregate += batch.aggregates
    s.spans_rejected += len(batch.rejected)


def _count_metrics(s: IngestStats, batch: MetricsBatch) -> None:
    s.data_points += batch.points
    s.data_points_rejected += len(batch.rejected)
    s.data_points_ignored += batch.ignored


TRACES = OtlpSignal(
    "an ExportTraceServiceRequest",
    parse_traces_proto,
    parse_export_json,
    export_response_proto,
    export_response,
    _count_trace_request,
    _count_traces,
)
METRICS = OtlpSignal(
    "an ExportMetricsServiceRequest",
    parse_metrics_proto,
    parse_metrics_json,
    metrics_response_proto,
    metrics_response,
    _count_metrics_request,
    _count_metrics,
)


async def _post_otlp(request: web.Request, signal: OtlpSignal[Batch]) -> web.Response:
    """One OTLP/HTTP export: parse in the request's encoding, publish, answer in it."""
    body = await _read_body(request, otlp=True)
    if isinstance(body, web.Response):
        return body
    ingest = request.app[INGEST]
    signal.count_request(ingest.stats)
    proto = request.content_type == PROTOBUF
    try:
        batch = (signal.parse_proto if proto else signal.parse_json)(body)
    except OtlpError as exc:
        return _error(400, str(exc), f"send {signal.request_name}", otlp=True, proto=proto)
    try:
        await ingest.publish(batch.events)
    except Unavailable as exc:
        return _error(503, str(exc), "retry the export", otlp=True, proto=proto)
    signal.count(ingest.stats, batch)
    ingest.stats.events_accepted += len(batch.events)
    if proto:
        return web.Response(body=signal.answer_proto(batch), content_type=PROTOBUF)
    return _json(signal.answer_json(batch), 200)


async def post_otlp_traces(request: web.Request) -> web.Response:
    return await _post_otlp(request, TRACES)


async def post_otlp_metrics(request: web.Request) -> web.Response:
    return await _post_otlp(request, METRICS)


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"}, 200)


async def readyz(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    if ingest.ready:
        return _json({"status": "ready"}, 200)
    reason = "shutting down" if ingest.draining else "not connected to Kafka yet"
    return _json({"status": "not ready", "reason": reason}, 503)


async def stats(request: web.Request) -> web.Response:
    return _json(asdict(request.app[INGEST].stats), 200)


def serve(settings: Settings, *, host: str, port: int, token: str | None) -> None:
    """Run until SIGTERM/SIGINT; then stop accepting, finish requests in flight
    (each waits for its acks), flush and stop the producer."""
    web.run_app(
        create_app(settings, token=token),
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=settings.ingest_ack_timeout_s + 5,
    )
