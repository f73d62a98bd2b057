"""Tool catalog: what a tool call *is* (its capabilities), from its name, resources and target.

A producer's explicit ``category`` wins. Otherwise the verbs and nouns in the tool name, the
resource types and environments, and the destination (inside or outside the organisation's
domains) decide. Results are cached per tool name and resource shape, so the hot path pays a
dict lookup for tools it has seen.

>>> cat = ToolCatalog(internal_domains=("acme.com",))
>>> sorted(cat.classify_parts("vault.read_secret", (), None, None).capabilities)
['read', 'secret_retrieval']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from detectors import capabilities as C
from schemas.events import Resource, Transfer

_TOKEN_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_READ = {
    "read",
    "get",
    "list",
    "search",
    "query",
    "find",
    "fetch",
    "describe",
    "lookup",
    "show",
    "view",
    "download",
    "select",
    "scan",
    "retrieve",
    "check",
    "load",
    "open",
    "browse",
}
_WRITE = {
    "write",
    "update",
    "create",
    "put",
    "insert",
    "set",
    "add",
    "append",
    "modify",
    "edit",
    "patch",
    "apply",
    "deploy",
    "upsert",
    "reserve",
    "schedule",
    "reschedule",
    "invite",
    "commit",
    "merge",
    "push",
    "save",
    "rename",
    "move",
    "provision",
}
_DESTRUCTIVE = {
    "delete",
    "drop",
    "remove",
    "destroy",
    "truncate",
    "purge",
    "wipe",
    "terminate",
    "revoke",
    "kill",
    "erase",
    "rm",
    "uninstall",
    "decommission",
}
_SEND = {
    "send",
    "email",
    "mail",
    "post",
    "publish",
    "share",
    "upload",
    "export",
    "forward",
    "reply",
    "message",
    "notify",
    "tweet",
    "webhook",
    "transmit",
    "exfiltrate",
    "sync",
}
_PAY = {
    "pay",
    "payment",
    "transfer",
    "money",
    "wire",
    "refund",
    "charge",
    "invoice",
    "payout",
    "transaction",
}
_EXEC = {
    "exec",
    "execute",
    "run",
    "shell",
    "bash",
    "eval",
    "python",
    "script",
    "command",
    "subprocess",
    "terminal",
    "code",
    "interpreter",
}
_SECRET = {
    "secret",
    "secrets",
    "password",
    "passwords",
    "credential",
    "credentials",
    "token",
    "tokens",
    "apikey",
    "key",
    "keys",
    "vault",
    "kms",
    "private",
}
_CRED = {
    "password",
    "permission",
    "permissions",
    "role",
    "roles",
    "iam",
    "policy",
    "acl",
    "grant",
    "mfa",
    "credential",
    "credentials",
    "apikey",
    "token",
    "access",
}
_WEB = {"webpage", "web", "url", "http", "https", "browser", "website", "page", "curl", "wget"}
_UNTRUSTED = {
    "email",
    "emails",
    "inbox",
    "webpage",
    "web",
    "website",
    "page",
    "message",
    "messages",
    "file",
    "files",
    "document",
    "documents",
    "review",
    "reviews",
    "channel",
    "comment",
    "comments",
    "post",
    "posts",
    "ticket",
    "issue",
    "browse",
}
_PROD = {"prod", "production", "live", "prd"}


def tokens(name: str) -> list[str]:
    """Lower-case words of a tool name (``vault.readSecret`` -> ``vault read secret``)."""
    return [t.lower() for t in _TOKEN_RE.findall(name)]


def host_of(destination: str) -> str | None:
    """The host of a URL, e-mail address or bare host name; None if there is none."""
    d = destination.strip()
    if not d:
        return None
    if "@" in d and "://" not in d:
        return d.rsplit("@", 1)[1].lower() or None
    parts = urlsplit(d if "://" in d else "//" + d)
    return (parts.hostname or "").lower() or None


@dataclass(frozen=True, slots=True)
class Classification:
    """What one action is: capabilities, the destination it reaches, its environment."""

    capabilities: frozenset[str]
    destination: str | None = None
    external: bool | None = None
    environment: str | None = None

    @property
    def privileged(self) -> bool:
        return bool(self.capabilities & C.PRIVILEGED)


class ToolCatalog:
    """Maps tool calls to capabilities. Explicit entries (``tools``) beat the name heuristics."""

    def __init__(
        self,
        internal_domains: Sequence[str] = (),
        tools: dict[str, Iterable[str]] | None = None,
        prod_environments: Iterable[str] = ("prod", "production"),
    ) -> None:
        self.internal_domains = tuple(d.lower().lstrip("*.") for d in internal_domains)
        self.tools = {k: frozenset(v) for k, v in (tools or {}).items()}
        self.prod_environments = frozenset(e.lower() for e in prod_environments)
        self._cache: dict[str, frozenset[str]] = {}

    def is_internal(self, host: str | None) -> bool | None:
        if not host:
            return None
        return any(host == d or host.endswith("." + d) for d in self.internal_domains)

    def name_capabilities(self, name: str) -> frozenset[str]:
        """Capabilities implied by the tool name alone (cached)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        explicit = self.tools.get(name)
        if explicit is not None:
            self._cache[name] = explicit
            return explicit
        words = set(tokens(name))
        caps: set[str] = set()
        reads = bool(words & _READ)
        writes = bool(words & _WRITE)
        if words & _DESTRUCTIVE:
            caps.add(C.DESTRUCTIVE)
        if words & _EXEC and not reads:
            caps.add(C.CODE_EXEC)
        if words & _PAY and (words & _SEND or writes or "pay" in words or "transfer" in words):
            caps.add(C.PAYMENT)
        elif words & _SEND and not reads:
            caps.add(C.SEND)
        if words & _SECRET and (reads or not (writes or words & _DESTRUCTIVE)):
            caps.update((C.SECRET_READ, C.READ))
        if words & _CRED and (writes or words & _DESTRUCTIVE):
            caps.add(C.CREDENTIAL_CHANGE)
        if reads:
            caps.add(C.READ)
            if words & _WEB:
                caps.add(C.FETCH)
        if writes:
            caps.add(C.WRITE)
        if (reads or not caps) and words & _UNTRUSTED:
            caps.add(C.UNTRUSTED_INPUT)
        if words & _WEB and not writes and not words & _SEND:
            caps.update((C.FETCH, C.UNTRUSTED_INPUT))
        out = frozenset(caps)
        self._cache[name] = out
        return out

    def classify_parts(
        self,
        tool_name: str | None,
        resources: Sequence[Resource],
        transfer: Transfer | None,
        category: str | None,
    ) -> Classification:
        caps: set[str] = set()
        if category:
            cap = C.normalize(category)
            if cap:
                caps.add(cap)
        if tool_name and not caps:
            caps.update(self.name_capabilities(tool_name))
        environment = None
        for r in resources:
            env = (r.environment or "").lower()
            if env:
                environment = env
            rtype = (r.type or "").lower()
            if rtype in ("secret", "credential", "password", "api_key") and C.WRITE not in caps:
                caps.update((C.SECRET_READ, C.READ))
            if (r.classification or "").lower() in ("restricted", "confidential", "secret", "pii"):
                if C.READ in caps:
                    caps.add(C.SENSITIVE_READ)
        if environment in self.prod_environments and caps & {C.WRITE, C.DESTRUCTIVE}:
            caps.add(C.PROD_WRITE)
        destination = external = None
        if transfer is not None:
            destination = transfer.destination
            host = host_of(destination) if destination else None
            internal = self.is_internal(host)
            external = (
                transfer.external
                if transfer.external is not None
                else (None if internal is None else not internal)
            )
            if external:
                caps.add(C.EGRESS)
            if transfer.records and transfer.records >= 1000 or (transfer.bytes or 0) >= 10_000_000:
                caps.add(C.BULK_READ)
        return Classification(frozenset(caps), destination, external, environment)
