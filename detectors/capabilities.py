"""What an action *is*, independent of what the tool is called.

The tool catalog (``detectors.catalog``) maps a tool call and its resources to a set of these
capabilities; rules and detectors reason on capabilities, not tool names. A producer may state
the capability itself in the event's ``category`` (one of the values below), which wins.
"""

from __future__ import annotations

from typing import Final

SECRET_READ: Final = "secret_retrieval"
SENSITIVE_READ: Final = "sensitive_read"
BULK_READ: Final = "bulk_read"
READ: Final = "read"
WRITE: Final = "write"
PROD_WRITE: Final = "production_write"
EGRESS: Final = "external_egress"
SEND: Final = "message_send"
PAYMENT: Final = "payment"
DESTRUCTIVE: Final = "destructive_change"
CREDENTIAL_CHANGE: Final = "credential_change"
CODE_EXEC: Final = "code_execution"
DELEGATION: Final = "delegation"
UNTRUSTED_INPUT: Final = "untrusted_content"
FETCH: Final = "web_fetch"

ALL: Final[tuple[str, ...]] = (
    SECRET_READ,
    SENSITIVE_READ,
    BULK_READ,
    READ,
    WRITE,
    PROD_WRITE,
    EGRESS,
    SEND,
    PAYMENT,
    DESTRUCTIVE,
    CREDENTIAL_CHANGE,
    CODE_EXEC,
    DELEGATION,
    UNTRUSTED_INPUT,
    FETCH,
)

#: Capabilities whose actions are privileged: they go to the privileged-action audit log.
PRIVILEGED: Final[frozenset[str]] = frozenset(
    {SECRET_READ, PROD_WRITE, EGRESS, PAYMENT, CREDENTIAL_CHANGE, DESTRUCTIVE, CODE_EXEC}
)

#: Capabilities that act on the world (as opposed to reading it): "sensitive actions".
SENSITIVE_ACTIONS: Final[frozenset[str]] = frozenset(
    {EGRESS, SEND, PAYMENT, CREDENTIAL_CHANGE, DESTRUCTIVE, PROD_WRITE, WRITE, CODE_EXEC, FETCH}
)

#: Aliases producers use in ``category`` for the capabilities above.
ALIASES: Final[dict[str, str]] = {
    "secret": SECRET_READ,
    "secret_read": SECRET_READ,
    "secret_retrieval": SECRET_READ,
    "credential_read": SECRET_READ,
    "sensitive_data_read": SENSITIVE_READ,
    "sensitive_read": SENSITIVE_READ,
    "data_access": READ,
    "read": READ,
    "bulk_read": BULK_READ,
    "write": WRITE,
    "production_write": PROD_WRITE,
    "prod_write": PROD_WRITE,
    "export": EGRESS,
    "data_export": EGRESS,
    "external_export": EGRESS,
    "external_egress": EGRESS,
    "egress": EGRESS,
    "message_send": SEND,
    "send": SEND,
    "payment": PAYMENT,
    "destructive": DESTRUCTIVE,
    "destructive_change": DESTRUCTIVE,
    "delete": DESTRUCTIVE,
    "credential_change": CREDENTIAL_CHANGE,
    "permission_change": CREDENTIAL_CHANGE,
    "credential_issuance": CREDENTIAL_CHANGE,
    "code_execution": CODE_EXEC,
    "exec": CODE_EXEC,
    "delegation": DELEGATION,
    "untrusted_content": UNTRUSTED_INPUT,
    "untrusted_input": UNTRUSTED_INPUT,
    "web_fetch": FETCH,
    "fetch": FETCH,
}


def normalize(category: str) -> str | None:
    """A producer's ``category`` as a capability name, or None if unknown."""
    key = category.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key if key in ALL else None)
