"""Redaction: secrets seen in events never reach storage or logs in clear.

Agents read secrets on purpose (``vault.read_secret``) and by accident (a ``.env`` file, a
connection string in a config dump); the monitor sees them in ``tool.arguments`` and
``tool.output``. Detectors may read them in memory, but whatever is stored goes through a
:class:`Redactor` first, which

* masks **secret-shaped values** anywhere in text: private key blocks, JWTs, cloud and SaaS
  API keys (AWS, GitHub, Slack, Stripe, OpenAI/Anthropic, Google), bearer/basic credentials,
  passwords in URLs and connection strings, ``key=value`` pairs whose key names a secret, and
  long high-entropy tokens;
* masks the values of **configured field names** (``Settings.redact_fields``, matched
  case-insensitively as words of the key: ``db_password``, ``X-Api-Key``, ``accessToken``);
* keeps a **fingerprint** of each masked value (HMAC-SHA256 with a per-deployment key,
  12 hex digits), so an investigator sees that two events carried the same secret without
  seeing it: ``[REDACTED:jwt#7c1e0a9b44d2]``;
* **bounds sizes**: ``tool.output`` to ``max_output_chars``, every other string to
  ``max_string_chars`` (redacting before cutting, so no half-secret survives the cut).

>>> r = Redactor(key=b"k" * 32, fields=["password"])
>>> r.text("aws configure set key AKIAIOSFODNN7EXAMPLE now")  # doctest: +ELLIPSIS
'aws configure set key [REDACTED:aws_access_key#...] now'
>>> r.value({"user": "bob", "password": "hunter2"}) == {
...     "user": "bob", "password": r.mask("hunter2", "field")}
True
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: Marker format: kind of secret and its fingerprint, never the value.
MASK_FORMAT = "[REDACTED:{kind}#{fp}]"
_MASK_RE = re.compile(r"\[REDACTED:[a-z_]+#[0-9a-f]{12}\]")

_SECRET_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?"
    r"|secret[_-]?access[_-]?key|client[_-]?secret|private[_-]?key|authorization|auth[_-]?token"
    r"|credentials?|session[_-]?key|signing[_-]?key"
)

# Each alternative is one named group; the callback masks the group named ``v_<kind>`` if the
# pattern has one (the secret inside a larger match), else the whole match. The patterns are
# split in passes, each gated by a cheap substring test, because Python's regex engine pays for
# every alternative at every position: one combined pattern cost ~250 µs per 900-byte event.
_PEM = (
    (
        "private_key",
        r"-----BEGIN[A-Z ]{0,40} PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,16384}?"
        r"(?:-----END[A-Z ]{0,40} PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
)
_URL = (
    (
        "url_password",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^:/?#\s@\[\]]{1,256}:(?P<v_url_password>[^@/\s]{1,256})@",
    ),
)
_KEYWORD = (
    (
        "bearer",
        r"\b(?:[Bb]earer|[Bb]asic|[Tt]oken)\s+(?P<v_bearer>(?!\[REDACTED)[A-Za-z0-9._~+/=-]{12,4096})",
    ),
    (
        "keyword",
        r"(?i:(?:" + _SECRET_WORDS + r")[A-Za-z0-9_-]{0,12}[\"']?\s{0,3}[:=]\s{0,3}[\"']?)"
        r"(?P<v_keyword>(?!\[REDACTED|(?:[Bb]earer|[Bb]asic|[Tt]oken)\s)[^\s\"',;&}<>]{6,4096})",
    ),
)
#: inside a long run of token characters: secrets with a recognisable shape
_PREFIXED = (
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,1024}"),
    (
        "aws_access_key",
        r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])",
    ),
    ("github_token", r"gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255}"),
    ("slack_token", r"xox[abposre]-[A-Za-z0-9-]{10,250}"),
    ("stripe_key", r"[rsp]k_(?:live|test)_[A-Za-z0-9]{16,250}"),
    ("api_key", r"sk-(?:proj-|ant-(?:api\d\d-)?|live-)?[A-Za-z0-9_-]{20,250}"),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
)
#: long random-looking tokens with no known prefix (checked with :func:`looks_random`)
_GENERIC_RE = re.compile(r"(?<![A-Za-z0-9+_])[A-Za-z0-9+_]{24,4096}={0,2}")
#: runs of characters that tokens are made of; only runs this long are looked at closely
_RUN_RE = re.compile(r"[A-Za-z0-9_+/=.-]{20,}")
#: where a keyword pattern can start (lower case): the keyword pass only tries these positions
_KW_STARTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "api",
    "access",
    "client",
    "private",
    "auth",
    "credential",
    "session",
    "signing",
    "bearer",
    "basic",
)


def _alternation(patterns: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<{kind}>{pat})" for kind, pat in patterns))


_PEM_RE = _alternation(_PEM)
_URL_RE = _alternation(_URL)
_KEYWORD_RE = _alternation(_KEYWORD)
_PREFIXED_RE = _alternation(_PREFIXED)
_VALUE_GROUP = {
    kind: f"v_{kind}" for kind, pat in _PEM + _URL + _KEYWORD + _PREFIXED if f"?P<v_{kind}>" in pat
}
#: the cheapest check first: strings shorter than this cannot hold a pattern above
_MIN_SECRET_LEN = 8
#: Members of the event contract (schemas/events.py) that hold identifiers, names, times,
#: enums or claims (``actor.credential`` carries claims, never the token: contracts.md).
#: They are stored as they are; every other member is scanned.
_SAFE_TOP = frozenset({"schema_version", "event_id", "time", "kind", "tenant", "category"})
_CREDENTIAL_CLAIMS = frozenset({"iss", "sub", "jti", "scope", "aud", "exp", "client_id"})
_RESOURCE_SAFE = frozenset({"type", "name", "environment", "classification", "owner", "uid"})
#: the free-text member of a section (scanned by ``event_doc`` itself)
_FREE_TEXT = {"intent": "task", "transfer": "destination"}
_SAFE_MEMBERS: dict[str, frozenset[str]] = {
    "session": frozenset({"id", "root_id", "parent_id", "seq"}),
    "actor": frozenset(
        {"agent_id", "agent_version", "workload_id", "on_behalf_of", "act_chain", "credential"}
    ),
    "otel": frozenset({"trace_id", "span_id"}),
    "delegation": frozenset({"child_session_id", "child_agent_id", "scopes_granted"}),
    "credential_issued": _CREDENTIAL_CLAIMS
    | frozenset({"ttl_s", "token_type", "bound_session_id"}),
    "tool": frozenset({"name", "call_id", "server", "outcome", "category", "arguments", "output"}),
    "intent": frozenset(
        {"allowed_tools", "allowed_destinations", "allowed_environments", "max_duration_s", "task"}
    ),
    "transfer": frozenset({"external", "bytes", "records", "destination"}),
}
_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(s: str) -> bool:
    """A long token mixing upper case, lower case and digits, with high entropy."""
    if not (any(c.isdigit() for c in s) and any(c.isupper() for c in s)):
        return False
    if not any(c.islower() for c in s):
        return False
    return entropy(s) >= 4.0


def load_key(path: Path | None, datadir: Path) -> bytes:
    """The deployment's fingerprint key: ``path`` if given, else ``datadir/redaction.key``
    (created with 32 random bytes, mode 0600, on first use). Every worker of a deployment
    must share it, or the same secret gets different fingerprints on different workers."""
    if path is not None:
        data = Path(path).read_bytes().strip()
        if len(data) < 16:
            raise ValueError(f"redaction key {path} is shorter than 16 bytes")
        return data
    target = Path(datadir) / "redaction.key"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
        os.replace(tmp, target)
    return target.read_bytes().strip()


class Redactor:
    """Masks secrets in event documents, keeping HMAC fingerprints; see the module docstring."""

    def __init__(
        self,
        key: bytes,
        fields: Iterable[str] = (),
        *,
        max_output_chars: int = 4_000,
        max_string_chars: int = 2_000,
    ) -> None:
        if not key:
            raise ValueError("the redaction key is empty")
        self._key = key
        self.fields = tuple(self._words(f) for f in fields if f.strip())
        self.max_output_chars = max_output_chars
        self.max_string_chars = max_string_chars
        self._field_cache: dict[str, bool] = {}
        self.masked = 0

    @staticmethod
    def _words(name: str) -> tuple[str, ...]:
        return tuple(w.lower() for w in _WORD_RE.findall(name))

    def fingerprint(self, value: str) -> str:
        """12 hex digits of HMAC-SHA256(key, value): same secret, same fingerprint."""
        return hmac.new(
            self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()[:12]

    def mask(self, value: Any, kind: str) -> str:
        """The marker that replaces ``value``."""
        self.masked += 1
        return MASK_FORMAT.format(kind=kind, fp=self.fingerprint(str(value)))

    def is_secret_field(self, name: str) -> bool:
        """Whether a key names a configured secret field (its words contain the field's)."""
        hit = self._field_cache.get(name)
        if hit is None:
            words = self._words(name)
            hit = any(words[i : i + len(f)] == f for f in self.fields for i in range(len(words)))
            if len(self._field_cache) < 100_000:
                self._field_cache[name] = hit
        return hit

    def _replace(self, m: re.Match[str]) -> str:
        kind = m.lastgroup or "secret"
        vgroup = _VALUE_GROUP.get(kind)
        if vgroup is not None:
            start, end = m.span(vgroup)
            value = m.group(vgroup)
            if _MASK_RE.fullmatch(value):
                return m.group(0)
            whole = m.group(0)
            off = m.start()
            return whole[: start - off] + self.mask(value, kind) + whole[end - off :]
        return self.mask(m.group(0), kind)

    def _generic(self, m: re.Match[str]) -> str:
        tok = m.group(0)
        return self.mask(tok, "token") if looks_random(tok.rstrip("=")) else tok

    def _run(self, m: re.Match[str]) -> str:
        run = _PREFIXED_RE.sub(self._replace, m.group(0))
        return _GENERIC_RE.sub(self._generic, run)

    def _keywords(self, s: str) -> str:
        # Matching the keyword alternation at every position costs ~100 µs per event; trying
        # it only where a keyword starts costs a few µs.
        low = s.lower()
        if not any(w in low for w in _KW_STARTS):
            return s
        starts: list[int] = []
        for w in _KW_STARTS:
            i = low.find(w)
            while i >= 0:
                starts.append(i)
                i = low.find(w, i + 1)
        if not starts:
            return s
        starts.sort()
        out: list[str] = []
        last = 0
        for p in starts:
            if p < last:
                continue
            m = _KEYWORD_RE.match(s, p)
            if m is not None:
                out.append(s[last:p])
                out.append(self._replace(m))
                last = m.end()
        if not out:
            return s
        out.append(s[last:])
        return "".join(out)

    def text(self, s: str, limit: int | None = None) -> str:
        """``s`` with every secret-shaped value masked, cut to ``limit`` characters."""
        limit = self.max_string_chars if limit is None else limit
        n = len(s)
        if n > limit:
            # Redact a margin past the cut, so a secret straddling it is matched whole.
            s = s[: limit + 16_384]
        if n >= _MIN_SECRET_LEN:
            if "PRIVATE KEY" in s:
                s = _PEM_RE.sub(self._replace, s)
            if "://" in s and "@" in s:
                s = _URL_RE.sub(self._replace, s)
            s = self._keywords(s)
            s = _RUN_RE.sub(self._run, s)
        if len(s) > limit:
            s = s[:limit] + f"…[truncated {n - limit} chars]"
        return s

    def value(self, v: Any, key: str | None = None, limit: int | None = None) -> Any:
        """A JSON value with secrets masked: by field name, then by shape, recursively."""
        if key is not None and v is not None and not isinstance(v, bool):
            if not isinstance(v, (dict, list)) and self.is_secret_field(key):
                return self.mask(v, "field")
        if isinstance(v, str):
            return self.text(v, limit)
        if isinstance(v, dict):
            return {
                k: self.value(x, k if isinstance(k, str) else None, limit) for k, x in v.items()
            }
        if isinstance(v, list):
            return [self.value(x, key, limit) for x in v]
        return v

    def _members(self, d: dict[str, Any], safe: frozenset[str]) -> dict[str, Any]:
        """Known identifier members as they are; anything else (a producer's extension)
        redacted like free text."""
        return {k: v if k in safe else self.value(v, k) for k, v in d.items()}

    def event_doc(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A decoded action event, redacted for storage.

        Members that carry free text are scanned (arguments, output, task, destination,
        resource uids); identifiers, names, times and claims the contract defines are copied;
        any member the contract does not define is scanned too (at any level).
        ``tool.output`` is bounded by ``max_output_chars``."""
        out: dict[str, Any] = {}
        for k, v in doc.items():
            safe = _SAFE_MEMBERS.get(k)
            if not isinstance(v, dict) or safe is None:
                if k in _SAFE_TOP:
                    out[k] = v
                elif k == "resources" and isinstance(v, list):
                    out[k] = [self._resource(r) for r in v]
                else:
                    out[k] = self.value(v, k)
                continue
            d = self._members(v, safe)  # free-text members are left to the branches below
            if k == "tool":
                output = v.get("output")
                if isinstance(output, str):
                    d["output"] = self.text(output, self.max_output_chars)
                elif output is not None:
                    d["output"] = self.value(output)
                if "arguments" in v:
                    d["arguments"] = self.value(v["arguments"])
            elif k == "actor" and "credential" in v:
                cred = v["credential"]
                d["credential"] = (
                    self._members(cred, _CREDENTIAL_CLAIMS)
                    if isinstance(cred, dict)
                    else self.value(cred, "credential")
                )
            elif k in _FREE_TEXT and _FREE_TEXT[k] in v:
                d[_FREE_TEXT[k]] = self.value(v[_FREE_TEXT[k]])
            out[k] = d
        return out

    def _resource(self, r: Any) -> Any:
        if not isinstance(r, dict):
            return self.value(r)
        d = self._members(r, _RESOURCE_SAFE)
        if "uid" in r:
            d["uid"] = self.value(r["uid"])
        return d

    def redact_fn(self) -> Callable[[str], str]:
        """A one-argument text redactor (for log filters)."""
        return self.text
