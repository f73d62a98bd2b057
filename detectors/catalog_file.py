"""A deployment's tool catalog file (YAML): its tools, domains, environments and words.

::

    internal_domains: [acme.com, acme.internal]
    prod_environments: [prod, production, live]
    tools:
      "vault.*": [secret_retrieval]
      deploy_service: [production_write, write]
    words:
      secret: [sops]
      destination_args: [target]

Every error is reported at once, each with its file:line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from detectors import capabilities as C
from detectors.catalog import ToolCatalog
from detectors.vocabulary import Vocabulary
from detectors.yamlsrc import Node, display_path, load_text, syntax_error
from schemas.errors import ConfigError

_FILE_KEYS = {"internal_domains", "prod_environments", "tools", "words"}


def load_catalog(path: Path, internal_domains: Sequence[str] = ()) -> ToolCatalog:
    """Load a deployment's catalog file (format above); ``internal_domains`` are added to the
    file's. Raises ConfigError listing every problem with its file:line."""
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read tool catalog {name}: {exc.strerror}") from None
    try:
        doc = load_text(text, name)
    except yaml.YAMLError as exc:
        raise ConfigError(syntax_error(exc, name)) from None
    if doc is None:
        return ToolCatalog(internal_domains)
    if not isinstance(doc, Node):
        raise ConfigError(f"A tool catalog must be a mapping in {name}:1")
    errors: list[str] = []
    for key in doc:
        if key not in _FILE_KEYS:
            errors.append(f"Unknown catalog key '{key}' in {doc.where(key)}")
    domains = list(internal_domains) + _strings(doc, "internal_domains", errors)
    prod = _strings(doc, "prod_environments", errors) or ["prod", "production", "prd"]
    tools: dict[str, list[str]] = {}
    raw_tools = doc.get("tools") or Node(name, doc.line)
    if not isinstance(raw_tools, Node):
        errors.append(f"'tools' must map tool names to capabilities in {doc.where('tools')}")
        raw_tools = {}
    for tool, caps in raw_tools.items():
        where = raw_tools.where(tool) if isinstance(raw_tools, Node) else name
        items = [caps] if isinstance(caps, str) else caps
        if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
            errors.append(f"Capabilities of '{tool}' must be a list of names in {where}")
            continue
        norm = []
        for c in items:
            cap = C.normalize(c)
            if cap is None:
                errors.append(f"Unknown capability '{c}' for tool '{tool}' in {where}")
            else:
                norm.append(cap)
        tools[tool] = norm
    words = doc.get("words") or Node(name, doc.line)
    more: dict[str, list[str]] = {}
    if not isinstance(words, Node):
        errors.append(f"'words' must map word classes to lists in {doc.where('words')}")
    else:
        known = Vocabulary.classes()
        for cls, items in words.items():
            if cls not in known:
                errors.append(
                    f"Unknown word class '{cls}' (one of {', '.join(known)}) in {words.where(cls)}"
                )
            elif not isinstance(items, list):
                errors.append(f"Words of '{cls}' must be a list in {words.where(cls)}")
            else:
                more[cls] = [str(i) for i in items]
    if errors:
        raise ConfigError("\n".join(errors))
    return ToolCatalog(domains, tools, prod, Vocabulary().extended(more))


def _strings(doc: Node, key: str, errors: list[str]) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"'{key}' must be a list of strings in {doc.where(key)}")
        return []
    return list(value)
