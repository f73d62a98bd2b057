"""The errors agentwatch raises, as one tree.

    AgentwatchError
    ├── InvalidEvent            an input record is not a valid action event
    │   ├── UndecodableEvent    not UTF-8 / not JSON / not a JSON object
    │   ├── OversizedEvent      larger than the configured limit
    │   └── SchemaViolation     JSON, but the contract's shape or types are wrong
    ├── ConfigError             a setting, catalog or rule file is wrong
    │   └── RuleError           one or more rule files do not load (all errors, with file:line)
    ├── SigningError            a kill signal could not be signed or a key could not be loaded
    ├── InvalidSignal           a received kill signal failed verification (signature, claims)
    └── SinkError               the event store refused or could not be reached

Every message says what was wrong and where (the field path, the file and line).
An ``InvalidEvent`` carries a short machine-readable ``code`` that is written to the
dead-letter record's headers next to the readable ``reason``.
"""

from __future__ import annotations


class AgentwatchError(Exception):
    """Base class of every error agentwatch raises on purpose."""


class InvalidEvent(AgentwatchError):
    """An input record is not a valid action event; it goes to the dead-letter topic."""

    code = "invalid"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class UndecodableEvent(InvalidEvent):
    """The record's bytes are not UTF-8 JSON holding an object."""

    code = "undecodable"


class OversizedEvent(InvalidEvent):
    """The record is larger than the configured maximum event size."""

    code = "oversized"


class SchemaViolation(InvalidEvent):
    """The record is JSON but misses required fields or has fields of the wrong type."""

    code = "schema"


class ConfigError(AgentwatchError):
    """A setting, a tool catalog or a rule file is wrong."""


class RuleError(ConfigError):
    """Rule files failed to load; ``errors`` lists every problem with its file:line."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        head = f"{count} error{'s' if count != 1 else ''} in rule files"
        super().__init__(head + ":\n" + "\n".join(f"  {e}" for e in self.errors))


class SigningError(AgentwatchError):
    """A kill signal could not be signed, or the signing key could not be loaded."""


class InvalidSignal(AgentwatchError):
    """A received kill signal failed verification: signature, type, issuer, audience or age."""


class SinkError(AgentwatchError):
    """The event store (ClickHouse) refused a write or could not be reached."""
