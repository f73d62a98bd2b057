"""Fuzzed records for the fault tests: hypothesis strategies and a corpus builder.

Each record says what must become of it, so the tests can check every one:

* ``valid``: a well-formed event (the clean sessions interleaved with the fuzz, and fuzzed
  events whose damage stays within what the contract allows): processed and stored;
* ``invalid`` with a reason code: random bytes, invalid UTF-8, a required field of the
  wrong type or missing, an absurd timestamp, a record over the size limit, a tombstone:
  dead-lettered unchanged with that code;
* ``either``: damage that may or may not be acceptable (huge or deeply nested optional
  fields, wrong types in optional fields, odd headers): dead-lettered or processed, exactly
  one of the two, never a crash.

Fuzzed events belong to their own root sessions (``<prefix>-fz<n>``), so that an absurd but
accepted event time cannot make the clean sessions' events late.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st

from schemas.events import DEFAULT_MAX_EVENT_BYTES, MAX_EVENT_TIME, MIN_EVENT_TIME

#: fuzzed root sessions (few, so a handful of reads find every stored fuzzed event)
FUZZ_ROOTS = 20

Headers = list[tuple[str, bytes]]


@dataclass
class Rec:
    """One record to send, and what must become of it."""

    value: bytes | None
    expect: str  # "valid" | "invalid" | "either"
    code: str | None = None  # the DLQ reason code an invalid record must carry
    family: str = ""
    headers: Headers = field(default_factory=list)
    root: str | None = None  # the root session a valid (or accepted) record is stored under
    event_id: str | None = None
    key: bytes = b"fuzz"


# -- building blocks -----------------------------------------------------------------------

_TEXT = st.text(max_size=40)
_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
#: values of the wrong type for a required string or object
_NOT_STR = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.lists(_JSON_LEAF, max_size=3)
)
_NOT_OBJ = st.none() | st.booleans() | st.integers() | _TEXT | st.lists(_JSON_LEAF, max_size=3)

_TOOLS = ("fs.read_file", "vault.read_secret", "db.update_rows", "http.post", "shell.exec", "x")


def base_doc(
    root: str, seq: int, kind: str = "tool_call", tool: str = "fs.read_file"
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "",  # set when the corpus numbers its records
        "time": f"2026-07-01T12:{seq // 60 % 60:02d}:{seq % 60:02d}Z",
        "kind": kind,
        "tenant": "acme",
        "session": {"id": root, "seq": seq},
        "actor": {"agent_id": "fuzz-agent"},
    }
    if kind == "tool_call":
        doc["tool"] = {"name": tool, "arguments": {"path": "/tmp/x"}}
    return doc


@st.composite
def _fuzz_doc(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of one of the fuzzed root sessions (``fz<n>``), to be damaged."""
    kind = draw(st.sampled_from(("tool_call", "tool_call", "session_start", "delegation")))
    root = f"fz{draw(st.integers(0, FUZZ_ROOTS - 1))}"
    return base_doc(root, draw(st.integers(0, 50)), kind, draw(st.sampled_from(_TOOLS)))


# -- the families -----------------------------------------------------------------------------


@st.composite
def random_bytes(draw: st.DrawFn) -> Rec:
    """Bytes that are not an event (random, or random JSON that is not an object)."""
    raw = draw(
        st.binary(min_size=1, max_size=300)
        | _JSON.map(lambda v: json.dumps(v).encode())
        | st.just(b"")
    )
    return Rec(raw, "invalid", None, "random_bytes")


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Rec:
    """A valid event whose text carries bytes that are not UTF-8 (or a lone surrogate)."""
    doc = draw(_fuzz_doc())
    bad = draw(
        st.sampled_from([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"])
        | st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d"])
    )
    where = draw(st.sampled_from(("agent_id", "tool", "extra")))
    marker = "@@BAD@@"
    if where == "agent_id":
        doc["actor"]["agent_id"] = f"a{marker}"
    elif where == "tool" and "tool" in doc:
        doc["tool"]["arguments"] = {"q": f"x{marker}y"}
    else:
        doc["note"] = marker
    raw = json.dumps(doc).encode().replace(marker.encode(), bad)
    return Rec(raw, "invalid", "undecodable", "invalid_utf8", root=doc["session"]["id"])


@st.composite
def wrong_types(draw: st.DrawFn) -> Rec:
    """A required field missing or of the wrong type (invalid), or an optional one of the wrong
    type (either: pydantic may coerce it)."""
    doc = draw(_fuzz_doc())
    target = draw(
        st.sampled_from(
            (
                "event_id", "kind", "session", "session.id", "actor", "actor.agent_id",
                "time", "tool.name", "drop", "optional",
            )
        )
    )  # fmt: skip
    if target == "drop":
        field_ = draw(st.sampled_from(("event_id", "time", "kind", "session", "actor")))
        del doc[field_]
        return _doc_rec(doc, "invalid", "schema", "wrong_types")
    if target == "optional":
        path = draw(
            st.sampled_from(
                ("session.seq", "tenant", "resources", "transfer", "intent", "actor.credential",
                 "tool.arguments", "tool.output", "delegation", "otel", "actor.act_chain")
            )
        )  # fmt: skip
        _set(doc, path, draw(_JSON))
        return _doc_rec(doc, "either", None, "wrong_types")
    if target == "time":
        value = draw(_NOT_OBJ.filter(lambda v: not isinstance(v, int | float)) | st.just({}))
    elif target in ("session", "actor"):
        value = draw(_NOT_OBJ)
    elif target == "tool.name" and doc["kind"] != "tool_call":
        doc["kind"] = "tool_call"
        doc["tool"] = {"name": draw(_NOT_STR)}
        return _doc_rec(doc, "invalid", "schema", "wrong_types")
    elif target == "kind":
        value = draw(_NOT_STR | _TEXT.filter(lambda s: s not in _KINDS))
    else:
        value = draw(_NOT_STR)
    _set(doc, target, value)
    return _doc_rec(doc, "invalid", "schema", "wrong_types")


_KINDS = {"session_start", "tool_call", "delegation", "credential_issued", "session_end"}

_HUGE = (10_000, 200_000, 900_000, DEFAULT_MAX_EVENT_BYTES + 1)
#: most huge records in one corpus (they are big: at 100,000 records the share would be ~1,200)
MAX_HUGE = 80


@st.composite
def huge_fields(draw: st.DrawFn) -> Rec:
    """A field of 10 kB .. just over the size limit: oversized records are dead-lettered,
    bounded identifiers too long are schema errors, long free text is fine."""
    doc = draw(_fuzz_doc())
    size = draw(st.sampled_from(_HUGE))
    char = draw(st.sampled_from(("A", "é", "🔑", "\u2028", "\\", '"')))
    blob = char * (size // len(char.encode()))
    where = draw(
        st.sampled_from(("tool.arguments.blob", "tool.output", "actor.agent_id", "event_id", "x"))
    )
    if where.startswith("tool") and "tool" not in doc:
        doc["kind"], doc["tool"] = "tool_call", {"name": "http.post"}
    if where == "event_id":
        return _finish(_doc_rec(doc, "either", None, "huge_fields", event_id=blob), size)
    _set(doc, where, blob)
    return _finish(_doc_rec(doc, "either", None, "huge_fields"), size)


def _finish(rec: Rec, size: int) -> Rec:
    if rec.value is not None and len(rec.value) > DEFAULT_MAX_EVENT_BYTES:
        rec.expect, rec.code = "invalid", "oversized"
    return rec


@st.composite
def deep_nesting(draw: st.DrawFn) -> Rec:
    """Optional members nested 10 .. 20,000 levels deep (lists and objects)."""
    depth = draw(st.sampled_from((10, 100, 250, 1_000, 5_000, 20_000)))
    opener, closer = draw(st.sampled_from(((b"[", b"]"), (b'{"a":', b"}"))))
    doc = draw(_fuzz_doc())
    marker = "@@DEEP@@"
    where = draw(st.sampled_from(("arguments", "extra", "output")))
    if where != "extra" and "tool" not in doc:
        doc["kind"], doc["tool"] = "tool_call", {"name": "http.post"}
    if where == "arguments":
        doc["tool"]["arguments"] = {"n": marker}
    elif where == "output":
        doc["tool"]["output"] = marker
    else:
        doc["extra"] = marker
    rec = _doc_rec(doc, "either", None, "deep_nesting")
    assert rec.value is not None
    nested = opener * depth + b"1" + closer * depth
    rec.value = rec.value.replace(json.dumps(marker).encode(), nested)
    return rec


_ABSURD = st.sampled_from(
    [
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "2026-13-45T25:61:61Z",
        "2026-07-01T12:00:00", "2026-07-01", "now", "", "+275760-09-13T00:00:00Z",
        "2026-07-01T12:00:00+99:99", "NaN", "Infinity", "-1",
    ]
) | st.sampled_from([-1, 0, -(2**63), 2**63, 1e300, -1e300, 2**1000])  # fmt: skip


@st.composite
def absurd_timestamps(draw: st.DrawFn) -> Rec:
    """Times far outside 2000..2200, malformed, naive, or numbers of every size; and random
    aware datetimes, valid exactly when inside the accepted range."""
    doc = draw(_fuzz_doc())
    if draw(st.booleans()):
        doc["time"] = draw(_ABSURD)
        return _doc_rec(doc, "invalid", "schema", "absurd_timestamps")
    offset = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    tz = timezone(timedelta(minutes=offset))
    when = draw(st.datetimes(timezones=st.just(tz)))
    doc["time"] = when.isoformat()
    ok = MIN_EVENT_TIME <= when.astimezone(UTC) < MAX_EVENT_TIME
    return _doc_rec(
        doc, "valid" if ok else "invalid", None if ok else "schema", "absurd_timestamps"
    )


@st.composite
def odd_headers(draw: st.DrawFn) -> Rec:
    """A valid event with random headers (content types, CloudEvents versions, binary junk)."""
    doc = draw(_fuzz_doc())
    rec = _doc_rec(doc, "either", None, "odd_headers")
    names = st.sampled_from(("content-type", "ce_specversion", "ce_id", "traceparent", "x"))
    rec.headers = draw(st.lists(st.tuples(names, st.binary(max_size=30)), max_size=3))
    return rec


FAMILIES: dict[str, st.SearchStrategy[Rec]] = {
    "random_bytes": random_bytes(),
    "invalid_utf8": invalid_utf8(),
    "wrong_types": wrong_types(),
    "huge_fields": huge_fields(),
    "deep_nesting": deep_nesting(),
    "absurd_timestamps": absurd_timestamps(),
    "odd_headers": odd_headers(),
}

#: share of each family in a corpus (huge records are rarer: they are big)
WEIGHTS = {
    "random_bytes": 20, "invalid_utf8": 10, "wrong_types": 20, "huge_fields": 1,
    "deep_nesting": 6, "absurd_timestamps": 15, "odd_headers": 10, "tombstone": 2,
}  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value


def _doc_rec(
    doc: dict[str, Any], expect: str, code: str | None, family: str, event_id: str | None = None
) -> Rec:
    """A record of ``doc`` (its ``event_id`` is filled in when the corpus numbers it)."""
    session = doc.get("session")
    root = session.get("id") if isinstance(session, dict) else None
    rec = Rec(None, expect, code, family, root=root if isinstance(root, str) else None)
    rec.value = json.dumps(doc).encode()
    rec.event_id = event_id  # a fixed (huge) id, or None: numbered later
    return rec


_NO_ID = b'"event_id": ""'


def number(recs: list[Rec], prefix: str) -> list[Rec]:
    """Give every record a unique event id and its roots the test's prefix (in place)."""
    for i, r in enumerate(recs):
        if r.value is None or not r.value.startswith(b"{"):
            continue
        if _NO_ID in r.value[:2000]:
            r.event_id = r.event_id or f"{prefix}-x{i}"
            member = json.dumps({"event_id": r.event_id}).encode()[1:-1]
            r.value = r.value.replace(_NO_ID, member, 1)
        if r.root is not None and r.family != "clean":
            new = f"{prefix}-{r.root}"
            r.value = r.value.replace(f'"id": "{r.root}"'.encode(), f'"id": "{new}"'.encode(), 1)
            r.root = new
        r.key = (r.root or "fuzz").encode()
    return recs


def draw_corpus(n: int, seed: int, batch: int = 20) -> list[Rec]:
    """About ``n`` fuzzed records drawn by hypothesis, each family in its ``WEIGHTS`` share,
    in a seeded random order."""
    total = sum(WEIGHTS.values())
    out: list[Rec] = []
    for name, weight in WEIGHTS.items():
        want = max(1, round(n * weight / total))
        if name == "huge_fields":  # up to ~1 MB each: a few dozen say what they can say
            want = min(want, MAX_HUGE)
        if name == "tombstone":  # one shape only: hypothesis would stop after one example
            out.extend(Rec(None, "invalid", "empty", "tombstone") for _ in range(want))
            continue
        got: list[Rec] = []

        @settings(
            max_examples=-(-want // batch),
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        @given(st.lists(FAMILIES[name], min_size=batch, max_size=batch))
        def collect(recs: list[Rec]) -> None:
            got.extend(recs)  # noqa: B023 (called right here, in this iteration)

        hyp_seed(seed)(collect)()
        out.extend(got[:want])
    random.Random(seed).shuffle(out)
    return out


def replicate(recs: list[Rec], n: int, seed: int) -> list[Rec]:
    """``n`` records made of copies of ``recs`` (before :func:`number` gives each copy its own
    event id); records over 100 kB are not copied (they are few, and costly)."""
    small = [r for r in recs if len(r.value or b"") <= 100_000]
    rng = random.Random(seed)
    out = list(recs)
    while len(out) < n:
        r = rng.choice(small)
        out.append(dataclasses.replace(r, headers=list(r.headers)))
    return out[:n] if n >= len(recs) else out


def with_clean(fuzz: list[Rec], clean: dict[str, list[dict[str, Any]]], seed: int) -> list[Rec]:
    """The fuzz with the clean sessions' events spread through it at random places, each
    session's events in order."""
    rng = random.Random(seed)
    steps = max(len(d) for d in clean.values())
    ordered = [d[i] for i in range(steps) for d in clean.values() if i < len(d)]
    recs = [
        Rec(
            json.dumps(doc).encode(),
            "valid",
            family="clean",
            root=doc["session"]["id"],
            event_id=doc["event_id"],
            key=doc["session"]["id"].encode(),
        )
        for doc in ordered
    ]
    slots = sorted(rng.sample(range(len(fuzz) + len(recs)), len(recs)))
    out: list[Rec] = []
    it, ic = iter(fuzz), iter(recs)
    for i in range(len(fuzz) + len(recs)):
        out.append(next(ic) if slots and slots[0] == i else next(it))
        if slots and slots[0] == i:
            slots.pop(0)
    return out
