"""Tool catalog: what a tool call *is* (its capabilities), from its name, arguments and target.

A producer's explicit ``category`` wins. Otherwise a deployment's explicit entries (exact names
or globs, from its catalog file) decide, and failing those the verbs and nouns in the tool
name (and its MCP server) do: ``send_money`` is a payment, ``vault.readSecret`` a secret
retrieval, ``mcp__github__delete_repo`` a destructive change. Resources and arguments add what
the name cannot say: the environment (a write to ``prod`` is a production write), the
destinations (URLs, e-mail addresses) and whether they lie outside the organisation's domains
(data leaving = external egress), how many records a read asks for (bulk read).

The name part is cached per (tool, server), so the hot path pays a dict lookup for tools it
has seen plus a scan of the (few) argument names.

>>> cat = ToolCatalog(internal_domains=("acme.com",))
>>> sorted(cat.classify_parts("vault.read_secret", (), None, None).capabilities)
['read', 'secret_retrieval']
>>> c = cat.classify_parts("send_email", (), None, None, {"to": ["eve@evil.example"]})
>>> sorted(c.capabilities), c.destination, c.external
(['external_egress', 'message_send'], 'eve@evil.example', True)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from detectors import capabilities as C
from detectors.vocabulary import Vocabulary
from schemas.events import ActionEvent, Resource, Transfer

_TOKEN_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_TYPES = frozenset(
    "secret credential password api_key apikey token private_key certificate ssh_key".split()
)
_SENSITIVE_CLASSES = frozenset("restricted confidential secret pii phi pci sensitive".split())
#: a read asking for at least this many records, or a transfer this large, is a bulk read
BULK_RECORDS = 1000
BULK_BYTES = 10_000_000
#: (tool, server) names whose capabilities are cached (the cache starts over when full)
MAX_CACHED_NAMES = 65_536
#: environment names whose production-ness is cached (starts over when full): argument values
#: that name a placement are looked up too, and agents choose those (it kept 65,536, and
#: stopped caching when full)
MAX_CACHED_ENVIRONMENTS = 4_096


def tokens(name: str) -> list[str]:
    """Lower-case words of a tool name (``vault.readSecret`` -> ``vault read secret``)."""
    return [t.lower() for t in _TOKEN_RE.findall(name)]


def _words(name: str) -> frozenset[str]:
    """The name's words plus their singular forms (``files`` -> ``file``, ``addresses`` ->
    ``address``, ``repositories`` -> ``repository``)."""
    out = set(tokens(name))
    for w in list(out):
        if len(w) > 3 and w.endswith("s"):
            out.add(w[:-1])
            if w.endswith("ies"):
                out.add(w[:-3] + "y")
            elif w.endswith(("sses", "xes", "ches", "shes")):
                out.add(w[:-2])
    return frozenset(out)


@lru_cache(maxsize=4096)
def host_of(destination: str) -> str | None:
    """The host of a URL, e-mail address or bare host name; None if there is none.

    Cached (the 4,096 most recent, ~1 MB at most): agents send to the same few places again
    and again, and ``urlsplit`` costs ~1.5 µs a destination; the catalog and several rule
    fields ask for each.
    """
    d = destination.strip()
    if not d or " " in d:
        return None
    if "@" in d and "://" not in d:
        return d.rsplit("@", 1)[1].lower() or None
    parts = urlsplit(d if "://" in d else "//" + d)
    host = (parts.hostname or "").lower()
    return host if "." in host or host == "localhost" else None


@dataclass(frozen=True, slots=True)
class Classification:
    """What one action is: capabilities, where it sends things, its environment.

    ``destinations`` are every place the call sends something; ``outside`` those with a host
    not known to be the organisation's; ``destination`` the first of ``outside`` (or the first
    one). ``external`` is True if a destination is known to be outside the organisation's
    domains, False if all are inside, None if unknown (no host, or no domains configured).
    """

    capabilities: frozenset[str]
    destination: str | None = None
    external: bool | None = None
    environment: str | None = None
    destinations: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()

    @property
    def privileged(self) -> bool:
        return bool(self.capabilities & C.PRIVILEGED)


class ToolCatalog:
    """Maps tool calls to capabilities. Explicit entries (``tools``) beat the name heuristics.

    ``tools`` maps exact names or globs (``vault.*``, ``*_delete_*``) to capabilities; an
    entry replaces what the name would say. Globs are tried in the order given.
    """

    def __init__(
        self,
        internal_domains: Sequence[str] = (),
        tools: Mapping[str, Iterable[str]] | None = None,
        prod_environments: Iterable[str] = ("prod", "production", "prd"),
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.internal_domains = tuple(d.lower().lstrip("*.") for d in internal_domains if d)
        self.tools = {k: frozenset(v) for k, v in (tools or {}).items() if not _is_glob(k)}
        self.tool_globs = [
            (k.lower(), frozenset(v)) for k, v in (tools or {}).items() if _is_glob(k)
        ]
        self.prod_environments = frozenset(e.lower() for e in prod_environments)
        self.words = vocabulary or Vocabulary()
        self._cache: dict[tuple[str, str | None], frozenset[str]] = {}
        #: (tool, server) -> the production word in its name (``deploy_to_production``)
        self._name_env: dict[tuple[str, str | None], str | None] = {}
        self._prod_cache: dict[str, bool] = {}
        #: argument name -> what it can say (``_arg_role``)
        self._arg_roles: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: Path, internal_domains: Sequence[str] = ()) -> ToolCatalog:
        """A catalog from a deployment's YAML file (see ``detectors.catalog_file``)."""
        from detectors.catalog_file import load_catalog

        return load_catalog(path, internal_domains)

    # -- destinations ---------------------------------------------------------------------
    def is_internal(self, host: str | None) -> bool | None:
        if not host or not self.internal_domains:
            return None
        return any(host == d or host.endswith("." + d) for d in self.internal_domains)

    def is_prod(self, environment: str | None) -> bool:
        """``prod``, ``production``, ``prod-eu``, ``eks-production-1``... (cached)."""
        if not environment:
            return False
        hit = self._prod_cache.get(environment)
        if hit is None:
            env = environment.lower()
            hit = env in self.prod_environments or bool(set(tokens(env)) & self.prod_environments)
            if len(self._prod_cache) >= MAX_CACHED_ENVIRONMENTS:
                self._prod_cache.clear()
            self._prod_cache[environment] = hit
        return hit

    # -- names ----------------------------------------------------------------------------
    def name_capabilities(self, name: str, server: str | None = None) -> frozenset[str]:
        """Capabilities implied by the tool name (and its server) alone (cached)."""
        key = (name, server)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = self._explicit(name)
        if out is None and server:
            out = self._explicit(f"{server}.{name}")
        env = None
        if out is None:
            words = _words(name) | (_words(server) if server else frozenset())
            out = self._from_words(words)
            env = next((w for w in tokens(name) if w in self.prod_environments), None)
        if len(self._cache) >= MAX_CACHED_NAMES:  # tool names come from agents: bounded
            self._cache.clear()
            self._name_env.clear()
        self._cache[key] = out
        self._name_env[key] = env
        return out

    def _explicit(self, name: str) -> frozenset[str] | None:
        hit = self.tools.get(name)
        if hit is not None:
            return hit
        low = name.lower()
        for pattern, caps in self.tool_globs:
            if fnmatch.fnmatchcase(low, pattern):
                return caps
        return None

    def _from_words(self, words: frozenset[str]) -> frozenset[str]:
        v = self.words
        reads = bool(words & v.read)
        writes = bool(words & v.write)
        destroys = bool(words & v.destructive)
        acts = writes or destroys or bool(words & v.grant)
        caps: set[str] = set()
        if destroys:
            caps.add(C.DESTRUCTIVE)
        agent = bool(words & v.agent)
        if not reads and not agent:
            runs = bool(words & v.exec)
            if (runs and (words & (v.code | v.runnable) or not words - v.exec)) or (
                words & v.code and not writes
            ):
                caps.add(C.CODE_EXEC)
        money = words & v.money - {"transfer"}
        if (words & v.pay and not reads) or (
            money and (words & v.send or writes or "transfer" in words)
        ):
            caps.add(C.PAYMENT)
        elif words & v.send and not reads:
            caps.add(C.SEND)
        if words & v.secret and (reads or not acts):
            caps.update((C.SECRET_READ, C.READ))
        if (words & v.credential or words & v.access) and (acts or words & v.send):
            caps.add(C.CREDENTIAL_CHANGE)
        if "invite" in words or (
            words & v.principal
            and (words & v.account or words & v.grant and words & (v.group | v.access))
        ):
            caps.add(C.CREDENTIAL_CHANGE)
        if words & v.delegate or (agent and (words & v.exec or writes or words & _HANDOFF)):
            caps.add(C.DELEGATION)
        if reads:
            caps.add(C.READ)
            if words & v.web:
                caps.add(C.FETCH)
            if words & v.sensitive:
                caps.add(C.SENSITIVE_READ)
        if words & v.bulk and words & (v.data | v.sensitive):
            caps.update((C.BULK_READ, C.READ))
        if writes and not caps & {C.PAYMENT, C.CREDENTIAL_CHANGE, C.DELEGATION}:
            caps.add(C.WRITE)
        if (reads or not caps) and words & v.untrusted:
            caps.add(C.UNTRUSTED_INPUT)
        if words & v.web and not writes and not words & v.send:
            caps.update((C.FETCH, C.UNTRUSTED_INPUT))
        if words & self.prod_environments and caps & {C.WRITE, C.DESTRUCTIVE}:
            caps.add(C.PROD_WRITE)
        return frozenset(caps)

    # -- one call -------------------------------------------------------------------------
    def classify(self, event: ActionEvent) -> Classification:
        """Classify one event (a tool call, or any other kind by its category/resources)."""
        tool = event.tool
        if tool is None and not event.resources and event.transfer is None and not event.category:
            # session starts and ends, credentials issued (a third of the events): nothing to
            # classify, and what classify_parts would build is always this (frozen, shared)
            return _DELEGATION_ONLY if event.kind == "delegation" else _NOTHING
        caps = self.classify_parts(
            tool.name if tool is not None else None,
            event.resources,
            event.transfer,
            event.category or (tool.category if tool is not None else None),
            tool.arguments if tool is not None else None,
            tool.server if tool is not None else None,
        )
        if event.kind == "delegation" and C.DELEGATION not in caps.capabilities:
            return replace(caps, capabilities=caps.capabilities | {C.DELEGATION})
        return caps

    def classify_parts(
        self,
        tool_name: str | None,
        resources: Sequence[Resource],
        transfer: Transfer | None,
        category: str | None,
        arguments: Mapping[str, Any] | None = None,
        server: str | None = None,
    ) -> Classification:
        caps: set[str] = set()
        if category:
            caps.update(c for c in map(C.normalize, category.split(",")) if c)
        name_env = None
        if tool_name and not caps:
            caps.update(self.name_capabilities(tool_name, server))
            name_env = self._name_env.get((tool_name, server))
        # The environment: a resource's own (the producer's structured statement; production
        # wins over others), else what the arguments say, else a production word in the name.
        res_env = None
        for r in resources:
            if r.environment:
                env = r.environment.lower()
                if res_env is None or (self.is_prod(env) and not self.is_prod(res_env)):
                    res_env = env
            rtype = (r.type or "").lower()
            if rtype in _SECRET_TYPES and not caps & _WRITES:
                caps.update((C.SECRET_READ, C.READ))
            if (r.classification or "").lower() in _SENSITIVE_CLASSES and C.READ in caps:
                caps.add(C.SENSITIVE_READ)
        dests: list[str] = []
        arg_env = self._scan_arguments(arguments, caps, dests) if arguments else None
        environment = res_env or arg_env or name_env
        if environment and caps & _CHANGES and self.is_prod(environment):
            caps.add(C.PROD_WRITE)
        forced_external: bool | None = None
        if transfer is not None:
            if transfer.destination:
                dests.insert(0, transfer.destination)
            forced_external = transfer.external
            if (transfer.records or 0) >= BULK_RECORDS or (transfer.bytes or 0) >= BULK_BYTES:
                caps.add(C.BULK_READ)
        if not dests:
            if forced_external:
                caps.add(C.EGRESS)
            return Classification(frozenset(caps), None, forced_external, environment)
        return self._with_destinations(caps, dests, environment, forced_external, transfer)

    def _scan_arguments(
        self, args: Mapping[str, Any], caps: set[str], dests: list[str]
    ) -> str | None:
        """Destinations, environment and requested size found in the call's arguments."""
        environment = None
        outward = bool(caps & _OUTWARD)
        roles = self._arg_roles
        for key, value in args.items():
            role = roles.get(key)
            if role is None:
                role = self._arg_role(key)
            if not role:
                continue  # most arguments (a subject, a body, an id) say nothing here
            if role & _DEST and outward:
                _collect(value, dests)
            elif (
                isinstance(value, str)
                and value
                and (role & _ENV or (role & _PLACEMENT and self._names_environment(value)))
            ):
                if environment is None or (self.is_prod(value) and not self.is_prod(environment)):
                    environment = value.lower()
            elif role & _LIMIT and C.READ in caps:
                if isinstance(value, (int, float)) and value >= BULK_RECORDS:
                    caps.add(C.BULK_READ)
            elif role & _SQL and isinstance(value, str):
                caps.update(sql_capabilities(value))
            if (
                role & _PATH
                and isinstance(value, str)
                and C.READ in caps
                and _SECRET_PATH_RE.search(value)
            ):
                caps.add(C.SECRET_READ)
        return environment

    def _arg_role(self, key: str) -> int:
        """What an argument name can say (``_DEST``, ``_ENV``... bits), cached: the lower-case
        name's look-ups in five word sets cost more than the dict hit (~0.3 µs an argument)."""
        v = self.words
        k = key.lower()
        role = (
            (_DEST if k in v.destination_args else 0)
            | (_ENV if k in v.environment_args else 0)
            | (_PLACEMENT if k in v.placement_args else 0)
            | (_LIMIT if k in v.limit_args else 0)
            | (_SQL if k in v.sql_args else 0)
            | (_PATH if "path" in k or "file" in k else 0)
        )
        if len(self._arg_roles) >= MAX_CACHED_NAMES:  # argument names come from agents
            self._arg_roles.clear()
        self._arg_roles[key] = role
        return role

    def _names_environment(self, value: str) -> bool:
        """``prod-eu``, ``staging``, ``eks-production-1`` name environments; ``payments-api``
        (a namespace named after its service) does not."""
        words = self.words.environment_words | self.prod_environments
        return self.is_prod(value) or bool(set(tokens(value.lower())) & words)

    def _with_destinations(
        self,
        caps: set[str],
        dests: list[str],
        environment: str | None,
        forced_external: bool | None,
        transfer: Transfer | None,
    ) -> Classification:
        uniq = tuple(dict.fromkeys(d for d in dests if d))
        outside: list[str] = []
        any_external = False
        all_internal = True
        leaves = False
        for d in uniq:
            host = host_of(d)
            internal = self.is_internal(host)
            if internal is not True:
                all_internal = False
            if internal is False:
                any_external = True
            # outside: a host not known to be ours, or (no host: a bucket, an account) the
            # producer's word that the transfer leaves; never when the producer says it stays
            if forced_external is False or internal is True:
                continue
            if host is not None or forced_external:
                leaves = True
                outside.append(d)
        if forced_external is not None:
            external: bool | None = forced_external
            leaves = forced_external
        elif any_external:
            external = True
        elif all_internal and uniq:
            external = False
        else:
            external = None
        if leaves and (caps & _CARRIES_DATA or transfer is not None):
            caps.add(C.EGRESS)
        first = outside[0] if outside else uniq[0]
        return Classification(frozenset(caps), first, external, environment, uniq, tuple(outside))


_HANDOFF = frozenset({"call", "ask", "transfer", "assign", "send", "handoff"})
_WRITES = frozenset({C.WRITE, C.CREDENTIAL_CHANGE})
#: changes that are production writes in a production environment
_CHANGES = frozenset({C.WRITE, C.DESTRUCTIVE, C.CREDENTIAL_CHANGE})
#: argument roles (bits): a destination, an environment, a placement (a namespace, a region:
#: an environment if its value names one), a record limit, an SQL statement, a file path
_DEST, _ENV, _PLACEMENT, _LIMIT, _SQL, _PATH = 1, 2, 4, 8, 16, 32
_NOTHING = Classification(frozenset())
_DELEGATION_ONLY = Classification(frozenset({C.DELEGATION}))
#: capabilities of calls that carry data to their destinations (a fetch only asks for some)
_CARRIES_DATA = frozenset({C.SEND, C.PAYMENT, C.WRITE, C.CREDENTIAL_CHANGE})
_OUTWARD = frozenset(
    {C.SEND, C.PAYMENT, C.WRITE, C.CREDENTIAL_CHANGE, C.FETCH, C.EGRESS, C.DELEGATION}
)


_SQL_RE = re.compile(
    r"(?:^|;)\s*(?:"
    r"(?P<destroy>drop\s+(?:table|database|schema|view|index|materialized|user|role)\b"
    r"|truncate\b|delete\s+from\b|alter\s+table\s+\S+\s+drop\b)"
    r"|(?P<grant>(?:grant|revoke)\s+\w[^;]*?\s(?:on|to|from)\s)"
    r"|(?P<write>insert\s+into\b|update\s+\S+\s+set\b|merge\s+into\b|upsert\b"
    r"|create\s+(?:or\s+replace\s+)?(?:table|database|schema|view|index|user|role)\b"
    r"|alter\s+(?:table|database|schema|user|role)\b|copy\s+into\b))",
    re.IGNORECASE,
)


#: Files that hold credentials: reading one is a secret retrieval whatever the tool is called.
_SECRET_PATH_RE = re.compile(
    r"(?:^|[/\\~])(?:\.aws/credentials|\.ssh/id_[a-z0-9]+|id_(?:rsa|dsa|ecdsa|ed25519)"
    r"|\.netrc|\.pgpass|\.npmrc|\.pypirc|\.git-credentials|\.docker/config\.json"
    r"|\.kube/config|\.env(?:\.(?!example|sample|template|dist)[a-z]+)?"
    r"|credentials\.json|service[-_]account[^/]*\.json"
    r"|secrets?\.(?:ya?ml|json|env|toml)|shadow|[^/]+\.(?:pem|p12|pfx|jks|keystore))$",
    re.IGNORECASE,
)


def sql_capabilities(statement: str) -> frozenset[str]:
    """What an SQL statement passed as an argument does, beyond the tool's name: DROP /
    TRUNCATE / DELETE destroy, GRANT / REVOKE change access, INSERT / UPDATE / CREATE write.

    >>> sorted(sql_capabilities("SELECT 1; DROP TABLE orders CASCADE"))
    ['destructive_change']
    >>> sql_capabilities("drop shipping suppliers near me")
    frozenset()
    """
    caps: set[str] = set()
    for m in _SQL_RE.finditer(statement[:20_000]):
        if m.group("destroy"):
            caps.add(C.DESTRUCTIVE)
        elif m.group("grant"):
            caps.add(C.CREDENTIAL_CHANGE)
        elif m.group("write"):
            caps.add(C.WRITE)
    return frozenset(caps)


def _collect(value: Any, out: list[str], depth: int = 0) -> None:
    """Destination strings in an argument value (a string, a list, a list of objects)."""
    if isinstance(value, str):
        for part in value.split(",") if "," in value and "://" not in value else (value,):
            part = part.strip()
            if part and len(part) <= 2048:
                out.append(part)
    elif isinstance(value, (list, tuple)) and depth < 2:
        for item in value[:64]:
            _collect(item, out, depth + 1)
    elif isinstance(value, Mapping) and depth < 2:
        for k in ("email", "address", "url", "id"):
            if isinstance(value.get(k), str):
                _collect(value[k], out, depth + 1)
                break


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")
