"""Fuzz target for the events-topic decoder (`schema.wire.decode`) and the event contract.

Why: `decode` runs on every message a worker reads, and its only documented
outcome is `(events, rejected)`. If it raises instead, the worker's batch
fails before the source offsets are committed, the worker restarts, reads the
same message again and fails again: one malformed message from any producer
stops a partition (a poison pill). And if it accepts an event that breaks the
contract, corrupt figures reach the shares. So any exception here is a crash,
and so is an accepted event that breaks a contract rule, or an input that is
neither stored nor dead-lettered.

Run for a fixed time (libFuzzer options pass through to atheris)::

    python -m tokenshare.bench.fuzz_decode -max_total_time=60
    python -m tokenshare.bench.fuzz_decode -runs=100000 my_corpus/

Two kinds of input: raw bytes, decoded as they are (seeded with valid and
invalid messages built here, not imported from tests/), and, when the first
byte is 0x01, a structured mutation of a valid event (field type changes,
boundary and non-finite numbers, timestamps from year 1 to 9999 with any
offset, missing and extra keys, long and non-ASCII strings) driven by the rest
of the input, which reaches the validators far faster than byte flips do.

A crash writes the input to `.tokenshare/fuzz/crash-<sha1>`; replay it with
`python -m tokenshare.bench.fuzz_decode .tokenshare/fuzz/crash-<sha1>`. The
corpus (`.tokenshare/fuzz/corpus`) and crash files (`.tokenshare/fuzz/`)
stay under the ignored `.tokenshare/` unless given on the command line
(`TOKENSHARE_FUZZ_DIR` moves both). Without atheris (no wheel for the
platform, TOKENSHARE_FUZZ_ENGINE=random to force it) a plain random mutation
loop runs instead and honours `-max_total_time`, `-runs` and `-seed`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha1
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tokenshare.schema.event import TokenEvent
    from tokenshare.schema.wire import Rejected

# tokenshare.schema is imported lazily (see `_contract`, `_wire`): under atheris it
# must be imported inside `instrument_imports` to give the fuzzer coverage feedback.

#: The decode limit used for fuzzing; inputs above it exercise the size check.
MAX_BYTES = 16 * 1024
STRUCTURED = 0x01  # first byte that selects the structured mode
#: Slack on "ts <= now + 1 h": the clock moves between validation and the check.
CLOCK_SLACK = timedelta(seconds=5)


class ContractBreach(AssertionError):
    """decode returned, but what it returned breaks the documented contract."""


class Raw:
    """A JSON token written verbatim (NaN, 1e400, a 400-digit integer, ...)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"


def loose_json(value: Any) -> bytes:
    """JSON text for `value`, including what orjson refuses to write: non-finite
    floats, integers past 64 bits, lone surrogates (escaped), `Raw` tokens, and
    objects given as lists of (key, value) pairs (duplicate keys)."""
    if isinstance(value, Raw):
        return value.text.encode()
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value)
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        if math.isnan(value):
            return b"NaN"
        if math.isinf(value):
            return b"Infinity" if value > 0 else b"-Infinity"
        return orjson.dumps(value)
    if isinstance(value, str):
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            return json.dumps(value).encode()  # \udxxx escapes
    if isinstance(value, dict):
        value = ObjectPairs(value.items())
    if isinstance(value, ObjectPairs):
        return b"{" + b",".join(loose_json(str(k)) + b":" + loose_json(v) for k, v in value) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(loose_json(v) for v in value) + b"]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class ObjectPairs(list[tuple[str, Any]]):
    """A JSON object as ordered pairs, so that a key may appear twice."""


# --- the oracles ---------------------------------------------------------------------------


def _full(pattern: str) -> re.Pattern[str]:
    """The schema's `^...$` pattern as a whole-string match (Python's `$` would
    also accept a trailing newline; pydantic's Rust regex does not)."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


EVENT_ID = _full(r"^[A-Za-z0-9._:@-]+$")  # the oracle restates the contract on purpose
LABEL = _full(r"^[A-Za-z0-9][A-Za-z0-9 ._/:-]*$")
LANGUAGE = _full(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def _contract() -> Any:
    return importlib.import_module("tokenshare.schema.event")


def _wire() -> Any:
    return importlib.import_module("tokenshare.schema.wire")


def contract_violations(ev: TokenEvent, now: datetime | None = None) -> list[str]:
    """Every README contract rule the accepted event `ev` breaks (empty when none).

    Written from the README's table, independently of the pydantic model, so a
    validator that lets something through is caught rather than trusted.
    """
    c = _contract()
    slug = _full(c.SLUG_PATTERN)
    out: list[str] = []

    def text(name: str, value: object, pattern: re.Pattern[str] | None, longest: int) -> None:
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            out.append(f"{name}={value!r}: not a string of 1-{longest} characters")
        elif pattern is not None and not pattern.fullmatch(value):
            out.append(f"{name}={value!r}: does not match {pattern.pattern}")

    def integer(name: str, value: object, low: int, high: int) -> None:
        if type(value) is not int or not low <= value <= high:
            out.append(f"{name}={value!r}: not an integer in {low}..{high}")

    text("event_id", ev.event_id, EVENT_ID, 128)
    text("model", ev.model, slug, 64 + 1 + 128)
    text("provider", ev.provider, LABEL, 64)
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
        integer(name, getattr(ev, name), 0, c.MAX_TOKENS)
    if not out:
        if ev.reasoning_tokens > ev.completion_tokens:
            out.append("reasoning_tokens > completion_tokens")
        if ev.cached_tokens > ev.prompt_tokens:
            out.append("cached_tokens > prompt_tokens")
    ts = ev.ts
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        out.append(f"ts={ts!r}: not an aware datetime")
    else:
        latest = (now or datetime.now(UTC)) + c.MAX_FUTURE + CLOCK_SLACK
        if not c.MIN_TS <= ts <= latest:
            out.append(f"ts={ts.isoformat()}: outside {c.MIN_TS.isoformat()} .. now + 1 h")
    cost = ev.cost_usd
    if type(cost) is not float or not math.isfinite(cost) or not 0 <= cost <= c.MAX_COST_USD:
        out.append(f"cost_usd={cost!r}: not a finite float in 0..{c.MAX_COST_USD}")
    for name in ("app_id", "user_id"):
        if getattr(ev, name) is not None:
            text(name, getattr(ev, name), None, 128)
    for name in ("category", "region", "finish_reason"):
        if getattr(ev, name) is not None:
            text(name, getattr(ev, name), LABEL, 64)
    if ev.language is not None:
        text("language", ev.language, LANGUAGE, 10_000)
    integer("tool_calls", ev.tool_calls, 0, 10_000)
    if ev.latency_ms is not None:
        integer("latency_ms", ev.latency_ms, 0, 3_600_000)
    if type(ev.streamed) is not bool:
        out.append(f"streamed={ev.streamed!r}: not a bool")
    return out


def accounting_violations(
    value: bytes | None, max_bytes: int, events: list[TokenEvent], rejected: list[Rejected]
) -> list[str]:
    """How `decode(value, max_bytes) == (events, rejected)` fails to account for its input.

    A message that is not an array is one event or one rejection, never both,
    never neither. An array that parses as JSON gives one outcome per element:
    the valid ones in order, each invalid one rejected with its index and its
    own bytes. An array that does not parse is rejected whole.
    """
    out: list[str] = []
    if not isinstance(events, list) or not isinstance(rejected, list):
        return [f"decode returned {type(events).__name__}, {type(rejected).__name__}"]
    out += [f"rejected without a reason: {r!r}" for r in rejected if not r.reason]
    whole = len(rejected) == 1 and rejected[0].index is None
    if value is None or len(value) > max_bytes:
        if events or not whole or (value is not None and rejected[0].original != value):
            out.append("a tombstone or oversized message must be rejected whole")
        return out
    if value.lstrip(b" \t\r\n")[:1] != b"[":
        one_event = len(events) == 1 and not rejected
        if not (one_event or (not events and whole and rejected[0].original == value)):
            out.append(f"single message gave {len(events)} events, {len(rejected)} rejections")
        return out
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        # orjson cannot read it; pydantic's parser may (it accepts NaN, for one).
        if not ((events and not rejected) or (not events and whole)):
            out.append(f"unparsable array gave {len(events)} events, {len(rejected)} rejections")
        return out
    if len(events) + len(rejected) != len(items):
        out.append(f"array of {len(items)}: {len(events)} events + {len(rejected)} rejected")
        return out
    indexes = [r.index for r in rejected if r.index is not None]
    if len(indexes) != len(rejected) or indexes != sorted(set(indexes)):
        out.append(f"rejected indexes not distinct and ascending: {[r.index for r in rejected]}")
        return out
    if indexes and not 0 <= indexes[0] <= indexes[-1] < len(items):
        out.append(f"rejected indexes outside the array of {len(items)}: {indexes}")
        return out
    bad = set(indexes)
    kept = [item for i, item in enumerate(items) if i not in bad]
    for ev, item in zip(events, kept, strict=True):
        if not isinstance(item, dict) or item.get("event_id") != ev.event_id:
            out.append(f"event {ev.event_id!r} is not the array's next valid element")
            break
    for index, r in zip(indexes, rejected, strict=True):
        try:
            same = same_json(orjson.loads(r.original), items[index])
        except orjson.JSONDecodeError:
            same = False
        if not same:
            out.append(f"rejected[{index}].original is not that element: {r.original[:80]!r}")
    return out


def same_json(a: Any, b: Any) -> bool:
    """Equality of two parsed JSON values, without recursion (`==` on lists
    nested 1,000 deep exceeds Python's recursion limit)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif x != y:
            return False
    return True


def check(value: bytes | None, max_bytes: int = MAX_BYTES) -> None:
    """Decode one message; raise on anything but the documented outcome."""
    events, rejected = _wire().decode(value, max_bytes)
    problems = accounting_violations(value, max_bytes, events, rejected)
    for ev in events:
        problems += [f"accepted {ev.event_id!r}: {p}" for p in contract_violations(ev)]
    if problems:
        raise ContractBreach(f"{value[:300] if value else value!r}: " + "; ".join(problems))


def check_python(doc: dict[str, Any]) -> None:
    """Validate a Python dict (the producer's path): an event, or ValidationError."""
    from pydantic import ValidationError

    try:
        ev = _contract().TokenEvent.model_validate(doc)
    except ValidationError as exc:
        if not str(exc):
            raise ContractBreach(f"ValidationError without a reason for {doc!r}") from None
        return
    problems = contract_violations(ev)
    if problems:
        raise ContractBreach(f"accepted {doc!r}: " + "; ".join(problems))


# --- inputs --------------------------------------------------------------------------------

MODELS = ["deepseek/deepseek-v3.2-20251201", "anthropic/claude-4.5-sonnet", "newlab/m-1"]
FIELDS = [
    "event_id", "ts", "model", "provider", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "cached_tokens", "cost_usd", "app_id", "user_id", "category",
    "region", "language", "tool_calls", "latency_ms", "finish_reason", "streamed",
]  # fmt: skip
NUMBERS: list[Any] = [
    0, 1, -1, 20_000_000, 20_000_001, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
    10**400, 0.0, -0.0, 1.0, 0.5, 1e-320, 1e308, 100_000.0, 100_000.0001, float("nan"),
    float("inf"), float("-inf"), Raw("1e400"), Raw("-1e400"), Raw("1E2"), Raw("0e0"),
    Raw("Infinity"), Raw("NaN"), Raw("-0"), Raw("1" + "0" * 4300),
]  # fmt: skip
STRINGS: list[Any] = [
    "", " ", "12", "1e3", "NaN", "null", "true", "a" * 64, "a" * 65, "a" * 128, "a" * 129,
    "x" * 70_000, "ev-1\n", "\n", "a/b", "a/", "/b", "a//b", "ünïcödé/模型", "emoji-😀",
    "\x00", "\ud800", "-1", "2026-02-10T12:00:00Z", "en-", "zh-Hant-TW",
]  # fmt: skip
SHAPES: list[Any] = [None, True, False, [], {}, [1], {"a": 1}, [[[[]]]]]


def valid_event(i: int, rnd: random.Random) -> dict[str, Any]:
    """A valid event that varies with `rnd` (inline, like tests/factories.event)."""
    prompt = rnd.randint(0, 60_000)
    completion = rnd.randint(0, 4_000)
    offset = timezone(timedelta(minutes=rnd.choice([0, 0, 60, -300, 330, 840, -720])))
    ts = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 21 * 86_400))
    return {
        "event_id": f"fz-{i}",
        "ts": ts.astimezone(offset).isoformat().replace("+00:00", "Z"),
        "model": rnd.choice(MODELS),
        "provider": rnd.choice(["DeepSeek", "Anthropic", "Together"]),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": rnd.randint(0, completion),
        "cached_tokens": rnd.randint(0, prompt),
        "cost_usd": round(rnd.random() * 0.05, 6),
        "app_id": f"app-{rnd.randint(1, 30)}",
        "user_id": f"u-{rnd.randint(1, 500):x}",
        "category": rnd.choice(["programming", "roleplay"]),
        "region": "us-east",
        "language": rnd.choice(["en", "zh", "pt-BR"]),
        "tool_calls": rnd.randint(0, 3),
        "latency_ms": rnd.randint(100, 30_000),
        "finish_reason": "stop",
        "streamed": rnd.random() < 0.5,
    }


def any_timestamp(rnd: random.Random) -> tuple[Any, Any]:
    """(JSON value, Python value) for `ts`: any instant of years 1-9999 at any
    offset, written in the shapes gateways get wrong."""
    # Uniform over the years, or within two days of an edge: the first and last
    # representable instants (where an offset overflows) and the contract's bounds.
    edge = rnd.choice([None, datetime(1, 1, 1), datetime(9999, 12, 31), datetime(2023, 1, 1),
                       datetime.now(UTC).replace(tzinfo=None)])  # fmt: skip
    first, last = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
    span = int((last - first).total_seconds())
    if edge is None:
        at = rnd.randint(0, span)
    else:
        at = int((edge - first).total_seconds()) + rnd.randint(-2 * 86_400, 2 * 86_400)
    instant = first + timedelta(seconds=min(max(at, 0), span))
    minutes = rnd.choice([0, rnd.randint(-1439, 1439), 1439, -1439, 60, -60])
    naive = instant.replace(microsecond=rnd.choice([0, rnd.randint(0, 999_999)]))
    aware = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    text = rnd.choice(
        [
            aware.isoformat(),
            aware.isoformat().replace("+00:00", "Z"),
            naive.isoformat(),
            aware.isoformat(sep=" "),
            naive.isoformat() + "z",
            naive.isoformat() + rnd.choice(["+24:00", "-24:00", "+00:00:30", "Z[UTC]", "+0100"]),
        ]
    )
    python = rnd.choice([aware, naive, text])
    return rnd.choice([text, text, rnd.randint(-(2**40), 2**40), Raw("1e400")]), python


def nested(depth: int) -> Raw:
    """A JSON array nested `depth` deep: parsers and encoders have recursion limits."""
    return Raw("[" * depth + "]" * depth)


def wild_value(rnd: random.Random) -> Any:
    kind = rnd.random()
    if kind < 0.03:
        return nested(rnd.choice([rnd.randint(1, 2000), 127, 128, 254, 255, 256, 1023, 1024]))
    if kind < 0.4:
        return rnd.choice(NUMBERS)
    if kind < 0.7:
        return rnd.choice(STRINGS)
    if kind < 0.8:
        return "".join(chr(rnd.randint(1, 0x10FFFF)) for _ in range(rnd.randint(1, 40)))
    return rnd.choice(SHAPES)


def mutated_event(rnd: random.Random) -> tuple[ObjectPairs, dict[str, Any]]:
    """A valid event with 1-4 mutations, as JSON pairs and as a Python dict."""
    doc = valid_event(rnd.randint(0, 10**6), rnd)
    py: dict[str, Any] = dict(doc)
    py["ts"] = datetime.fromisoformat(doc["ts"])
    for _ in range(rnd.randint(1, 4)):
        op = rnd.random()
        name = rnd.choice(FIELDS)
        if op < 0.3:
            doc[name] = py[name] = wild_value(rnd)
        elif op < 0.5:
            doc["ts"], py["ts"] = any_timestamp(rnd)
        elif op < 0.6:
            doc.pop(name, None)
            py.pop(name, None)
        elif op < 0.7:
            extra = rnd.choice(["new_field", "", "ts ", "Prompt_Tokens", "\u00e9"])
            doc[extra] = py[extra] = wild_value(rnd)
        elif op < 0.85:
            part, whole = rnd.choice(
                [("reasoning_tokens", "completion_tokens"), ("cached_tokens", "prompt_tokens")]
            )
            value = doc.get(whole, 0) if isinstance(doc.get(whole), int) else 0
            doc[part] = py[part] = value + rnd.choice([-1, 0, 1, 10**6])
        else:
            doc[name] = py[name] = rnd.choice("aé😀/.-: ") * rnd.choice([1, 64, 65, 129, 5000])
    pairs = ObjectPairs(doc.items())
    if rnd.random() < 0.05:  # the same key twice: which one wins must not matter
        pairs.append((rnd.choice(FIELDS), wild_value(rnd)))
    return pairs, py


def structured(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The structured input `data` stands for: one mutated event, or an array
    mixing valid and mutated events."""
    rnd = random.Random(data)
    pairs, py = mutated_event(rnd)
    if rnd.random() < 0.3:
        items: list[Any] = [valid_event(i, rnd) for i in range(rnd.randint(0, 4))]
        items.insert(rnd.randint(0, len(items)), pairs)
        return loose_json(items), py
    return loose_json(pairs), py


def one_input(data: bytes) -> None:
    """The fuzz target: raw bytes, or (first byte 0x01) a structured mutation."""
    if data[:1] == bytes([STRUCTURED]):
        value, py = structured(data[1:])
        try:
            check(value)
            check_python(py)
        except Exception:
            # libFuzzer reports the seed bytes; say what they stood for.
            print(f"structured input, as decoded: {value[:2000]!r}", file=sys.stderr)
            print(f"and as validated from Python: {str(py)[:2000]}", file=sys.stderr)
            raise
    else:
        check(data)
        if data:
            check(data, len(data) - 1)  # the size limit, one byte short


def seeds() -> list[bytes]:
    """A small corpus of valid and invalid messages, so the fuzzer starts near
    the interesting inputs instead of from empty bytes."""
    rnd = random.Random(2026)
    good = [valid_event(i, rnd) for i in range(8)]
    g = good[0]
    out = [orjson.dumps(e) for e in good[:4]]
    out += [
        orjson.dumps(good[4:8]),
        b"  \n" + orjson.dumps(good[4:6]),
        orjson.dumps([good[4], {**g, "prompt_tokens": -1}, 1, "x", None, good[5]]),
        b"this is not json {",
        b"{}",
        b"[]",
        b"[1, 2, 3]",
        b"",
        b"null",
        orjson.dumps({k: v for k, v in g.items() if k != "model"}),
        orjson.dumps({**g, "prompt_tokens": "12"}),
        orjson.dumps({**g, "completion_tokens": 5, "reasoning_tokens": 6}),
        orjson.dumps({**g, "cached_tokens": g["prompt_tokens"] + 1}),
        orjson.dumps({**g, "prompt_tokens": 10**12}),
        b'{"event_id":"x","prompt_tokens":1' + b"0" * 400 + b"}",
        orjson.dumps(g).replace(b'"cost_usd":' + orjson.dumps(g["cost_usd"]), b'"cost_usd":NaN'),
        orjson.dumps({**g, "ts": "2999-01-01T00:00:00Z"}),
        orjson.dumps({**g, "ts": "2022-12-31T23:59:59-01:00"}),
        orjson.dumps({**g, "ts": "2023-01-01T00:00:00+14:00"}),
        orjson.dumps({**g, "ts": "2026-02-01T00:00:00"}),
        orjson.dumps({**g, "model": "no slash here"}),
        orjson.dumps({**g, "event_id": "ev-1\n"}),
        b'[{"event_id": "bad-11", "model": "a/b"',
        b"[" * 40 + b"]" * 40,
    ]
    out += [bytes([STRUCTURED]) + rnd.randbytes(8) for _ in range(8)]
    return out


# --- runners -------------------------------------------------------------------------------


def _option(argv: Sequence[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"-{name}="):
            return arg.split("=", 1)[1]
    return None


def _workdir() -> Path:
    return Path(os.environ.get("TOKENSHARE_FUZZ_DIR", ".tokenshare/fuzz"))


def _seed_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for value in seeds():
        (folder / f"seed-{sha1(value).hexdigest()[:16]}").write_bytes(value)


class Counter:
    """Executions and time, for the summary line `make fuzz` prints."""

    def __init__(self) -> None:
        self.runs = 0
        self.crashes = 0
        self.start = time.monotonic()

    def wrap(self, target: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def counted(data: bytes) -> None:
            self.runs += 1
            try:
                target(data)
            except BaseException:
                self.crashes += 1
                raise

        return counted

    def summary(self, engine: str) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return (
            f"fuzz_decode [{engine}]: {self.runs} executions in {elapsed:.1f} s "
            f"({self.runs / elapsed:,.0f} exec/s), crashes: {self.crashes}"
        )


def run_atheris(atheris: Any, argv: list[str]) -> None:
    """libFuzzer via atheris: coverage-guided over the instrumented schema modules."""
    with atheris.instrument_imports(include=["tokenshare.schema"]):
        importlib.import_module("tokenshare.schema.wire")
    work = _workdir()
    args = list(argv)
    if not any(not a.startswith("-") for a in args[1:]):
        _seed_corpus(work / "corpus")
        args.append(str(work / "corpus"))
    if _option(args, "artifact_prefix") is None:
        work.mkdir(parents=True, exist_ok=True)
        args.insert(1, f"-artifact_prefix={work}/")
    counter = Counter()
    _at_exit(lambda: print(counter.summary("atheris"), flush=True))
    atheris.Setup(args, counter.wrap(one_input))
    atheris.Fuzz()


_EXIT_HOOKS: list[Any] = []  # ctypes callbacks must outlive the call that registers them


def _at_exit(report: Callable[[], None]) -> None:
    """Run `report` once when the process ends. libFuzzer ends it with C exit()
    when -max_total_time or -runs is reached, which skips Python's atexit (a
    crash goes through Python's exit instead), so register with both."""
    import atexit
    import ctypes

    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            report()

    atexit.register(once)
    libc = ctypes.CDLL(None)
    if hasattr(libc, "on_exit"):  # glibc; elsewhere the libFuzzer lines must do
        hook = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(lambda _s, _a: once())
        _EXIT_HOOKS.append(hook)
        libc.on_exit(hook, None)


def mutate(value: bytes, corpus: Sequence[bytes], rnd: random.Random) -> bytes:
    """One to four byte-level mutations: the fallback's stand-in for libFuzzer."""
    tokens = [b"NaN", b"-1", b"1e400", b"null", b"[", b"]", b"{", b"}", b",", b'"', b"\\u0000",
              b"0001", b"9999", b"+23:59", b"-23:59", b"Z", b"\xff", b"1" + b"0" * 30]  # fmt: skip
    out = bytearray(value)
    for _ in range(rnd.randint(1, 4)):
        pos = rnd.randint(0, len(out))
        op = rnd.randrange(5)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rnd.randrange(256)
        elif op == 1:
            out[pos:pos] = rnd.choice(tokens)
        elif op == 2:
            del out[pos : pos + rnd.randint(1, 16)]
        elif op == 3 and out:
            start = rnd.randrange(len(out))
            out[pos:pos] = out[start : start + rnd.randint(1, 64)]
        else:
            other = rnd.choice(corpus)
            out[pos:] = other[rnd.randint(0, len(other)) :]
    return bytes(out)


def run_fallback(argv: list[str]) -> int:
    """Random mutation of the seeds, for where atheris cannot be installed."""
    seconds = float(_option(argv, "max_total_time") or 60)
    runs = int(_option(argv, "runs") or -1)
    rnd = random.Random(int(_option(argv, "seed") or time.time_ns()))
    corpus = seeds()
    counter = Counter()
    target = counter.wrap(one_input)
    deadline = time.monotonic() + seconds
    while counter.runs != runs and time.monotonic() < deadline:
        base = rnd.choice(corpus)
        data = mutate(base, corpus, rnd) if rnd.random() < 0.8 else rnd.randbytes(64)
        if rnd.random() < 0.3:
            data = bytes([STRUCTURED]) + rnd.randbytes(16)
        try:
            target(data)
        except Exception:
            work = _workdir()
            work.mkdir(parents=True, exist_ok=True)
            crash = work / f"crash-{sha1(data).hexdigest()}"
            crash.write_bytes(data)
            traceback.print_exc()
            print(f"crash input written to {crash}", file=sys.stderr)
            print(counter.summary("random"), flush=True)
            return 1
    print(counter.summary("random"), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if os.environ.get("TOKENSHARE_FUZZ_ENGINE") != "random":
        try:
            atheris = importlib.import_module("atheris")
        except ImportError:
            print("atheris is not installed: random mutation loop instead", file=sys.stderr)
        else:
            run_atheris(atheris, argv)
            return 0
    return run_fallback(argv)


if __name__ == "__main__":
    sys.exit(main())
