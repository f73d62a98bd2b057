"""Values that can steer an action: addresses, account numbers, URLs, hosts, phones, paths.

Data-flow detectors need to know where the values in a tool call's arguments came from. This
module pulls such values out of free text (task text, tool output) and out of argument objects,
in one normalised form so that ``Mark.Black@Example.com`` in an e-mail body and
``mark.black@example.com`` in a ``send_email`` call are the same value. Only values that
identify a *destination or object of an action* are extracted: numbers, dates and prose are not.

Scanning is bounded (``max_chars``) because tool outputs can be large and this runs on the hot
path.

>>> sorted(extract("Send it to Mark.Black@Example.com or https://evil.example.net/x?a=1 now"))
['evil.example.net', 'evil.example.net/x', 'mark.black@example.com']
>>> sorted(extract("IBAN: DE89 3704 0044 0532 0130 00, call +1 (555) 010-9999"))
['+15550109999', 'de89370400440532013000']
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

#: Value kinds, for explanations.
EMAIL = "email"
URL = "url"
HOST = "host"
IBAN = "iban"
PHONE = "phone"
ACCOUNT = "account"
PATH = "path"
IDENT = "ident"
#: an identifier-shaped argument value (``guest_k12``, ``P-0042``, ``331-2201-77``) of an
#: argument that names an object by id (``*_id``, ``*_ids``, ``*_number``, ``account``...)
REF = "ref"

_TLDS = (
    "com|org|net|io|ai|co|info|biz|dev|app|xyz|me|us|uk|de|fr|es|it|nl|ch|at|be|ru|cn|jp|kr|in|"
    "br|pt|pl|se|no|dk|fi|eu|gov|edu|mil|int|online|site|top|live|shop|cloud|tech|page|link|ly|to|tk"
)
_EXTS = (
    "txt|pdf|docx?|xlsx?|csv|json|ya?ml|md|py|sh|ps1|exe|zip|tar|gz|key|pem|env|log|pptx?|"
    "html?|js|sql|db|cfg|conf|ini"
)
# Hosts, URLs and file names are found from their last dot (a literal prefix the regex engine
# scans for quickly), then expanded to the left and right by hand.
_DOT_RE = re.compile(r"\.(?:(" + _TLDS + r")|(" + _EXTS + r"))(?![A-Za-z0-9_-])", re.IGNORECASE)
# IBANs, phone numbers, account numbers: not after a word character or a "+". The first
# character is matched before that check (``(?<![\w+].)``, one character later) and before the
# alternatives (each checks it with a look-behind), so that the pattern starts with a character
# class: the regex engine then skips to the positions where one is, instead of trying every
# alternative at every position (twice as fast on tool output; the same matches).
_NUMERIC_RE = re.compile(
    r"[A-Z+\d](?<![\w+].)"
    r"(?:(?<=[A-Z])([A-Z]\d{2}(?: ?[A-Z0-9]){10,30})"
    r"|(?<=\+)(\d[\d ().-]{6,18}\d)"
    r"|(?<=\d)(\d{8,18}))"
    r"(?![\w.-])"
)
_DIGIT_RE = re.compile(r"\d")
_UNIX_PATH_RE = re.compile(r"(?:~|\.{1,2})?/(?:[\w.-]+/)+[\w.-]+")
_WIN_PATH_RE = re.compile(r"[A-Za-z]:\\(?:[\w .-]+\\)*[\w.-]+")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_LOCAL_CHARS = _HOST_CHARS | frozenset("%+")
_URL_STOP = frozenset(" \t\r\n'\"<>()[]{}|\\^`,;")
_TRAILING = ".,;:!?'\")]}>"


def _url_forms(raw: str) -> Iterator[str]:
    """``https://www.A.com/x/`` -> ``a.com/x`` and ``a.com``: the host alone is a value too."""
    u = raw.rstrip(_TRAILING)
    low = u.lower()
    for prefix in ("https://", "http://", "ftp://"):
        if low.startswith(prefix):
            u = u[len(prefix) :]
            low = low[len(prefix) :]
            break
    if low.startswith("www."):
        u = u[4:]
    host, _, path = u.partition("/")
    host = host.split("@")[-1].split(":")[0].lower().rstrip(".")
    if "." not in host or len(host) < 4:
        return
    yield host
    path = path.split("#")[0].split("?")[0].rstrip("/")
    if path:
        yield f"{host}/{path}"


def extract(text: str, max_chars: int = 20_000) -> set[str]:
    """The steering values in ``text`` (normalised), scanning at most ``max_chars``."""
    return set(extract_kinds(text, max_chars))


def _emails(text: str, out: dict[str, str]) -> list[tuple[int, int]]:
    spans = []
    i = text.find("@")
    while i > 0:
        a = i
        while a > 0 and text[a - 1] in _LOCAL_CHARS:
            a -= 1
        b = i + 1
        while b < len(text) and text[b] in _HOST_CHARS:
            b += 1
        local, domain = text[a:i], text[i + 1 : b].rstrip(".-")
        tld = domain.rsplit(".", 1)[-1]
        if local and "." in domain and tld.isalpha() and 2 <= len(tld) <= 24:
            out[f"{local}@{domain}".lower()] = EMAIL
            spans.append((a, i + 1 + len(domain)))
        i = text.find("@", b)
    return spans


def extract_kinds(text: str, max_chars: int = 20_000) -> dict[str, str]:
    """Like :func:`extract`, with each value's kind."""
    if not text or len(text) < 4:
        return {}
    if len(text) > max_chars:
        text = text[:max_chars]
    if not ("." in text or "@" in text or "/" in text or "\\" in text or _DIGIT_RE.search(text)):
        return {}  # every kind of value has one of these
    out: dict[str, str] = {}
    emails = _emails(text, out) if "@" in text else []
    taken: list[tuple[int, int]] = list(emails)
    n = len(text)
    for m in _DOT_RE.finditer(text) if "." in text else ():
        a = m.start()
        while a > 0 and text[a - 1] in _HOST_CHARS:
            a -= 1
        if a == m.start() or any(x <= a < y for x, y in taken):
            continue
        b = m.end()
        if m.group(1) is not None:  # a host, maybe with a scheme before and a path after
            while a >= 3 and text[a - 3 : a] == "://":
                a -= 3
                while a > 0 and text[a - 1].isalpha():
                    a -= 1
            if b < n and text[b] in "/:":
                while b < n and text[b] not in _URL_STOP:
                    b += 1
            for form in _url_forms(text[a:b]):
                out.setdefault(form, URL if "/" in form else HOST)
        else:  # a file name
            if a > 0 and text[a - 1] in "/\\~":
                continue  # part of a path, found below
            out.setdefault(text[a:b].lower(), PATH)
        taken.append((a, b))
    if "/" in text:
        for m in _UNIX_PATH_RE.finditer(text):
            if not any(x <= m.start() < y for x, y in taken) and "//" not in m.group(0):
                out.setdefault(m.group(0).lower(), PATH)
    if ":\\" in text:
        for m in _WIN_PATH_RE.finditer(text):
            out.setdefault(m.group(0).lower(), PATH)
    for m in _NUMERIC_RE.finditer(text) if _DIGIT_RE.search(text) else ():
        found, kind = m.group(0), m.lastindex  # the groups leave out the first character
        if kind == 1:
            v = found.replace(" ", "")
            if len(v) >= 14 and any(c.isdigit() for c in v[4:]):
                out[v.lower()] = IBAN
        elif kind == 2:
            out["+" + "".join(c for c in found if c.isdigit())] = PHONE
        else:
            out.setdefault(found, ACCOUNT)
    return out


#: Argument names whose short string values are destinations or objects even when they are not
#: address-shaped (a user name, a channel, a file id).
DESTINATION_KEYS = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "recipient",
        "recipients",
        "user",
        "username",
        "user_name",
        "user_email",
        "email",
        "channel",
        "url",
        "link",
        "host",
        "destination",
        "dest",
        "target",
        "account",
        "iban",
        "address",
        "phone",
        "number",
        "path",
        "file",
        "file_path",
        "filename",
        "file_id",
        "participants",
        "attendees",
        "payee",
        "beneficiary",
        "webhook",
        "endpoint",
        "server",
        "repo",
        "repository",
        "bucket",
    }
)


#: Argument names that hold an object's identifier (``guest_ids``, ``payee_id``, ``appid``,
#: ``to_account_number``, ``account``): their identifier-shaped values are steering values too.
_ID_KEY_RE = re.compile(
    r"(?:ids?|numbers?|(?:^|_)no|accounts?|payees?|guests?|beneficiar(?:y|ies)|handles?)$"
)
#: An identifier: letters, digits and joiners with at least one digit, not a date or a time.
_REF_RE = re.compile(r"[a-z0-9#@](?:[a-z0-9_.:#/-]*[a-z0-9])?")
_DATE_RE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}:\d{2}|\d{1,2}/\d{1,2}/\d{2,4}")
_ID_KEYS: dict[str, bool] = {}


def id_key(key: str) -> bool:
    """Whether an argument name names an object by its identifier (cached).

    >>> id_key("guest_ids"), id_key("payee_id"), id_key("to_account_number"), id_key("amount")
    (True, True, True, False)
    """
    hit = _ID_KEYS.get(key)
    if hit is None:
        hit = bool(_ID_KEY_RE.search(key))
        if len(_ID_KEYS) < 4096:
            _ID_KEYS[key] = hit
    return hit


def is_ref(v: str) -> bool:
    """Whether a (lower-cased, stripped) string is identifier-shaped: one token of letters,
    digits and joiners with a digit in it, at least 4 characters (5 when all digits), not a
    date or a time.

    >>> [is_ref(x) for x in ("guest_k12", "p-0042", "331-2201-77", "2022-02-22", "12", "mars")]
    [True, True, True, False, False, False]
    """
    if not 4 <= len(v) <= 40 or not _DIGIT_RE.search(v) or not _REF_RE.fullmatch(v):
        return False
    if v.isdigit():
        return len(v) >= 5
    return not _DATE_RE.search(v)


def _walk(obj: Any, key: str, depth: int, out: list[tuple[str, str]]) -> None:
    if depth > 4 or len(out) > 256:
        return
    # exact types first (what JSON decodes to): an ABC check (``Mapping``) costs ~0.2 µs
    cls = type(obj)
    if cls is str:
        out.append((key, obj))
    elif cls is dict:
        for k, v in obj.items():
            name = k.lower() if type(k) is str else str(k).lower()
            if type(v) is str:  # the call below, inlined for the commonest value
                if depth < 4 and len(out) <= 256:
                    out.append((name, v))
            else:
                _walk(v, name, depth + 1, out)
    elif cls is bool or obj is None:
        return
    elif isinstance(obj, str):
        out.append((key, obj))
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _walk(v, str(k).lower(), depth + 1, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj[:64]:
            _walk(v, key, depth + 1, out)
    elif (
        isinstance(obj, (int, float))
        and not isinstance(obj, bool)
        and (key in DESTINATION_KEYS or (isinstance(obj, int) and id_key(key)))
    ):
        out.append((key, str(obj)))


def argument_values(arguments: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Steering values in a tool call's arguments: value -> (argument name, kind).

    Address-shaped values anywhere in the arguments, plus the whole (short) string of a
    destination-like argument (``recipient``, ``channel``, ``user``...) as an ``ident``, and
    identifier-shaped strings of destination-like or id arguments (``payee_id``,
    ``guest_ids``) as a ``ref``.

    >>> argument_values({"guest_ids": ["Guest_K12"], "permanent": True, "when": "2022-02-22"})
    {'guest_k12': ('guest_ids', 'ref')}
    """
    if not arguments:
        return {}
    strings: list[tuple[str, str]] = []
    _walk(arguments, "", 0, strings)
    out: dict[str, tuple[str, str]] = {}
    for key, s in strings:
        found = _short_values(s)
        for v, kind in found.items():
            out.setdefault(v, (key, kind))
        if not found and (key in DESTINATION_KEYS or id_key(key)):
            v = s.strip().lower()
            if v in out or not 2 <= len(v) <= 80:
                continue
            if is_ref(v):
                out[v] = (key, REF)
            elif key in DESTINATION_KEYS:
                out[v] = (key, IDENT)
    return out


#: Values of short argument strings, by string: the same recipient, channel or URL comes back in
#: call after call. Bounded; cleared when full. Values are never mutated by callers.
_SHORT_CACHE: dict[str, dict[str, str]] = {}
_SHORT_MAX_CHARS = 256
_SHORT_CACHE_SIZE = 16_384


def _short_values(s: str) -> dict[str, str]:
    if len(s) > _SHORT_MAX_CHARS:
        return extract_kinds(s, 4_000)
    found = _SHORT_CACHE.get(s)
    if found is None:
        if len(_SHORT_CACHE) >= _SHORT_CACHE_SIZE:
            _SHORT_CACHE.clear()
        found = _SHORT_CACHE[s] = extract_kinds(s, 4_000)
    return found
