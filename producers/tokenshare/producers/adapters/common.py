"""What every adapter needs: numbers, times, ids, labels, providers and model slugs.

Adapters are lenient on the way in (a token count sent as ``"123"`` is still
123; a provider called ``mistral_ai`` is still Mistral) and strict on the way
out: every document they build is validated as a ``TokenEvent`` before it is
sent, so the contract stays the one place that says what an event is.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tokenshare.schema.event import EVENT_ID_CHARS, EVENT_ID_MAX, TokenEvent
from tokenshare.schema.wire import describe

#: An event document: what an adapter builds, JSON-ready, before validation.
EventDoc = dict[str, Any]

_EVENT = TypeAdapter(TokenEvent)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_OK = re.compile(rf"^[{EVENT_ID_CHARS}]{{1,{EVENT_ID_MAX}}}$")
_ID_BAD_CHARS = re.compile(rf"[^{EVENT_ID_CHARS}]")
_LABEL_BAD_CHARS = re.compile(r"[^A-Za-z0-9 ._/:-]")
_AUTHOR_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$")
_MODEL_BAD_CHARS = re.compile(r"[^A-Za-z0-9._:~@+-]+")
_LATENCY_MAX_MS = 3_600_000  # the contract's bound; a longer span is not a request's latency


class MappingError(ValueError):
    """A source record that cannot become a valid event; the message says why."""


def to_event(doc: EventDoc) -> TokenEvent:
    """Validate a built document as the contract does on the wire (JSON mode, strict)."""
    import orjson

    try:
        return _EVENT.validate_json(orjson.dumps(doc))
    except ValidationError as exc:
        raise MappingError(describe(exc)) from None


def compact(doc: Mapping[str, Any]) -> EventDoc:
    """The document without unset fields, so that the contract's defaults apply."""
    return {k: v for k, v in doc.items() if v is not None}


# --- numbers ---------------------------------------------------------------------


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a decimal string; None otherwise.

    OTLP JSON carries 64-bit integers as strings, and some instrumentations send
    token counts as doubles or strings: all mean the same count."""
    if isinstance(value, bool):
        return None  # True is not one token
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,19}", text):
            return int(text)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def within(part: int | None, total: int) -> int:
    """A part (reasoning of completion, cached of prompt) never above its total.

    Sources disagree on whether such parts are included in the total; the
    contract says they are, and clamping keeps the total the source reported."""
    if part is None or part < 0:
        return 0
    return min(part, max(total, 0))


def with_cache_parts(input_tokens: int, cache_read: int | None, cache_write: int | None) -> int:
    """Prompt tokens including the tokens read from and written to a prompt cache.

    OpenAI-style usage (OpenRouter's, the OpenTelemetry conventions') counts both
    inside the input tokens; Anthropic's counts them apart, and then the input is
    smaller than the cache parts. So: `input_tokens` when it can hold them, else
    the sum, so that cache writes are kept in ``prompt_tokens`` either way."""
    parts = (cache_read or 0) + (cache_write or 0)
    return input_tokens if input_tokens >= parts else input_tokens + parts


def prompt_and_cache(
    input_tokens: int, cache_read: int | None, cache_write: int | None
) -> tuple[int, int, int]:
    """(prompt_tokens, cached_tokens, cache_creation_tokens) of a usage report:
    the prompt as `with_cache_parts` counts it, and the two cache parts within it
    (reads first, then writes in what is left), as the event contract asks."""
    prompt = with_cache_parts(input_tokens, cache_read, cache_write)
    cached = within(cache_read, prompt)
    return prompt, cached, within(cache_write, prompt - cached)


def latency_ms(start: datetime | None, end: datetime | None) -> int | None:
    """Milliseconds from start to end, or None when unknown or not plausible."""
    if start is None or end is None:
        return None
    millis = int((end - start) / timedelta(milliseconds=1))
    return millis if 0 <= millis <= _LATENCY_MAX_MS else None


# --- times -----------------------------------------------------------------------


def from_unix_nanos(value: Any) -> datetime | None:
    """OTLP times: unix nanoseconds, as a string or a number."""
    nanos = as_int(value)
    if nanos is None or nanos <= 0:
        return None
    return _EPOCH + timedelta(microseconds=nanos // 1_000)


def from_epoch_seconds(value: Any) -> datetime | None:
    seconds = as_float(value)
    if seconds is None or seconds <= 0:
        return None
    return _EPOCH + timedelta(seconds=seconds)


def from_iso(value: Any) -> datetime | None:
    """An ISO 8601 time; without an offset it is taken as UTC (what gateways log)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def from_datetime(value: Any) -> datetime | None:
    """A datetime object; a naive one is local time (what ``datetime.now()`` gives)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.astimezone()


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- ids and labels ----------------------------------------------------------------


def event_id(*candidates: Any) -> str | None:
    """The first usable id among `candidates`, made to fit the contract's id rule.

    Characters outside the id alphabet become `-`, the same way in every adapter,
    so that one request seen through two adapters keeps one id (and is stored
    once). Ids longer than 128 characters are hashed."""
    for candidate in candidates:
        if candidate is None or isinstance(candidate, bool):
            continue
        text = str(candidate).strip()
        if not text:
            continue
        if _ID_OK.match(text):
            return text
        cleaned = _ID_BAD_CHARS.sub("-", text)
        if len(cleaned) <= 128:
            return cleaned
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:40]
    return None


def label(value: Any, max_length: int = 64) -> str | None:
    """A value as the contract's label (finish reasons, providers...), or None:
    characters outside the label alphabet become `-`, and it is cut to length."""
    if value is None or isinstance(value, bool):
        return None
    text = _LABEL_BAD_CHARS.sub("-", str(value).strip())
    text = text.lstrip(" ._/:-")[:max_length].rstrip()
    return text or None


def short_text(value: Any, max_length: int = 128) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()[:max_length]
    return text or None


def opaque_user(value: Any) -> str | None:
    """A user id as the contract wants it: opaque, never an e-mail address.

    Gateways often key users by e-mail; such ids are replaced by a stable hash,
    so that retention still counts the same user as one."""
    text = short_text(value, max_length=1_000)
    if text is None:
        return None
    if "@" in text or len(text) > 128:
        return "u:" + hashlib.sha256(text.lower().encode()).hexdigest()[:32]
    return text


def first(*values: Any) -> Any:
    """The first value that is not None (0 and "" count as values)."""
    return next((v for v in values if v is not None), None)


# --- providers and model slugs ------------------------------------------------------

#: Provider names as gateways spell them (OpenTelemetry ``gen_ai.provider.name`` /
#: ``gen_ai.system``, LiteLLM ``custom_llm_provider``) -> the label stored. The labels
#: follow OpenRouter's provider names, so that the provider dimension means the same
#: thing whichever adapter an event came through.
PROVIDER_LABELS: dict[str, str] = {
    "openai": "OpenAI", "text-completion-openai": "OpenAI",
    "azure": "Azure", "azure_ai": "Azure", "azure.ai.openai": "Azure",
    "azure.ai.inference": "Azure", "az.ai.openai": "Azure", "az.ai.inference": "Azure",
    "anthropic": "Anthropic",
    "aws.bedrock": "Amazon Bedrock", "bedrock": "Amazon Bedrock",
    "gcp.gemini": "Google AI Studio", "gemini": "Google AI Studio",
    "gcp.vertex_ai": "Google Vertex", "vertex_ai": "Google Vertex",
    "vertex_ai_beta": "Google Vertex", "gcp.gen_ai": "Google", "google": "Google",
    "deepseek": "DeepSeek", "mistral_ai": "Mistral", "mistral": "Mistral",
    "x_ai": "xAI", "xai": "xAI", "groq": "Groq", "cohere": "Cohere", "cohere_chat": "Cohere",
    "perplexity": "Perplexity", "ibm.watsonx.ai": "IBM watsonx", "watsonx": "IBM watsonx",
    "together_ai": "Together", "fireworks_ai": "Fireworks", "deepinfra": "DeepInfra",
    "openrouter": "OpenRouter", "moonshot": "Moonshot AI", "dashscope": "Alibaba",
    "cerebras": "Cerebras", "sambanova": "SambaNova", "ollama": "Ollama",
    "hosted_vllm": "vLLM", "nvidia_nim": "NVIDIA",
}  # fmt: skip

#: Providers that are also the author of every model they serve under a bare name.
_AUTHOR_OF_PROVIDER: dict[str, str] = {
    "openai": "openai", "text-completion-openai": "openai",
    "azure.ai.openai": "openai", "az.ai.openai": "openai", "azure": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google", "gemini": "google", "gcp.vertex_ai": "google",
    "vertex_ai": "google", "vertex_ai_beta": "google", "gcp.gen_ai": "google", "google": "google",
    "deepseek": "deepseek", "mistral_ai": "mistralai", "mistral": "mistralai",
    "x_ai": "x-ai", "xai": "x-ai", "cohere": "cohere", "cohere_chat": "cohere",
    "perplexity": "perplexity", "moonshot": "moonshotai", "dashscope": "qwen",
}  # fmt: skip

#: Model families by the start of a bare model name. Checked before the provider,
#: because clients routinely call other labs' models through an OpenAI-compatible
#: API (``gen_ai.system = openai`` with ``deepseek-chat``), and hosts (Groq,
#: Bedrock, Together) serve many labs' models.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), author)
    for pattern, author in (
        (r"^(gpt-|chatgpt|o[134](-|$)|text-embedding-|davinci|babbage|codex|whisper)", "openai"),
        (r"^claude", "anthropic"),
        (r"^(gemini|gemma|learnlm)", "google"),
        (r"^(meta-)?llama", "meta-llama"),
        (r"^(mistral|mixtral|codestral|ministral|magistral|devstral|pixtral|voxtral)", "mistralai"),
        (r"^deepseek", "deepseek"),
        (r"^(qwen|qwq)", "qwen"),
        (r"^grok", "x-ai"),
        (r"^(command|c4ai-)", "cohere"),
        (r"^(kimi|moonshot)", "moonshotai"),
        (r"^(glm|chatglm)", "z-ai"),
        (r"^(sonar|pplx)", "perplexity"),
        (r"^minimax", "minimax"),
        (r"^phi-", "microsoft"),
    )
)

#: Bedrock model ids are ``[region.]vendor.model``; vendor -> author slug prefix.
_BEDROCK_VENDORS: dict[str, str] = {
    "anthropic": "anthropic", "meta": "meta-llama", "amazon": "amazon", "mistral": "mistralai",
    "cohere": "cohere", "deepseek": "deepseek", "ai21": "ai21", "qwen": "qwen",
    "openai": "openai", "writer": "writer",
}  # fmt: skip
_BEDROCK_ID = re.compile(r"^(?:(?:us|eu|apac|us-gov|global)\.)?([a-z0-9]+)\.(.+)$")

#: Gateway prefixes that name a route, not an author (``openrouter/deepseek/...``,
#: ``bedrock/anthropic.claude...``, ``accounts/fireworks/models/...``).
_ROUTE_PREFIXES = {
    "openrouter", "bedrock", "vertex_ai", "azure", "azure_ai", "together_ai", "fireworks_ai",
    "groq", "ollama", "hosted_vllm", "databricks", "sagemaker", "huggingface", "deepinfra",
    "replicate", "cerebras", "sambanova", "nvidia_nim", "watsonx", "accounts",
}  # fmt: skip


def provider_label(provider: Any) -> str:
    """The stored provider label; ``unknown`` when the source does not say."""
    if provider is None:
        return "unknown"
    key = str(provider).strip().lower()
    return PROVIDER_LABELS.get(key) or label(provider) or "unknown"


def model_slug(model: Any, provider: Any = None) -> str | None:
    """The ``author/model`` slug of a model name as a gateway reported it.

    A name that already is ``author/model`` is kept. A bare name gets its author
    from the model family (``claude-...`` is Anthropic's wherever it runs), then
    from the provider when the provider is also the author (``openai`` +
    ``gpt-4o`` -> ``openai/gpt-4o``), and otherwise the provider name itself
    (lowercased), which the catalog stores as an unidentified lab rather than
    guessing. None when there is no model name at all.
    """
    name = str(model).strip() if model is not None else ""
    if not name:
        return None
    author, bare = _split_model(name, provider)
    return f"{author}/{_model_part(bare)}"


def _split_model(name: str, provider: Any) -> tuple[str, str]:
    if name.startswith("arn:"):  # a Bedrock inference-profile ARN: the id is its last part
        name = name.rsplit("/", 1)[-1]
    parts = name.split("/")
    if len(parts) == 2 and _AUTHOR_OK.match(parts[0]) and parts[0] not in _ROUTE_PREFIXES:
        return parts[0], parts[1]
    if len(parts) >= 2:
        # A routed name: the model is the last part; the part before it is the
        # author when nothing better is known ("openrouter/meta-llama/llama-3.3").
        known = _known_author(parts[-1], None)
        if known is not None:
            return known
        if _AUTHOR_OK.match(parts[-2]) and parts[-2] not in _ROUTE_PREFIXES:
            return parts[-2], parts[-1]
        if len(parts) == 2 and _AUTHOR_OK.match(parts[0]):
            return parts[0], parts[1]  # e.g. openrouter/auto: the router is the author
        name = parts[-1]
    return _known_author(name, provider) or (_provider_author(provider), name)


def _model_part(name: str) -> str:
    """The model half of a slug in the contract's alphabet (deployment names such as
    ``gpt4o_prod`` are free text; an invalid slug would lose the whole event)."""
    return _MODEL_BAD_CHARS.sub("-", name).strip("-._:~@+")[:128] or "unknown"


def _known_author(name: str, provider: Any) -> tuple[str, str] | None:
    """(author, model) of a bare name from its Bedrock vendor, family or provider."""
    lowered = name.lower()
    bedrock = _BEDROCK_ID.match(lowered)
    if bedrock and bedrock.group(1) in _BEDROCK_VENDORS:
        return _BEDROCK_VENDORS[bedrock.group(1)], name[bedrock.start(2) :]
    for pattern, author in _FAMILIES:
        if pattern.match(lowered):
            return author, name
    owner = _AUTHOR_OF_PROVIDER.get(str(provider).strip().lower()) if provider else None
    return (owner, name) if owner is not None else None


def _provider_author(provider: Any) -> str:
    """The author prefix for an unknown lab: the provider's name, lowercased."""
    text = str(provider).strip().lower() if provider is not None else ""
    text = re.sub(r"[^a-z0-9._~-]+", "-", text).strip("-._~")[:64]
    return text or "unknown"
