"""Adapters that meet LLM traffic where it already is.

Gateways that cannot speak Kafka, or that already record requests in their own
shape, reach the events topic through one of these:

- ``http_ingest``: ``tokenshare ingest-http``, an HTTP endpoint for events and
  OTLP/HTTP traces and metrics (protobuf or JSON), answering only after Kafka
  acknowledged; ``http_metrics``: its Prometheus metrics;
- ``otel``: OpenTelemetry GenAI spans and ``gen_ai.client.token.usage`` -> token
  events (needs the ``http`` extra, for opentelemetry-proto);
- ``litellm``: a LiteLLM logging callback (LiteLLM itself is not a dependency);
- ``openrouter``: OpenRouter's chat-completion ``usage`` and per-generation
  record -> token event.

Every adapter produces plain event documents and validates them against
``schema.event.TokenEvent`` before anything is sent; the field mappings are
tabled in this folder's README.md.
"""
