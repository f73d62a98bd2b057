"""Falco-style structured exceptions: ``fields`` / ``comps`` / rows of ``values``.

An exception matches an event when, for one row of values, every field compares true with
its value; an event that matches never feeds the rule. One field with ``in`` (the default
for a single field) takes a flat list of values.
"""

from __future__ import annotations

from typing import Any

from detectors.rules import fields as F
from detectors.rules.bodies import BodyCompiler
from detectors.rules.expr import LIST_OPS, SET, ExprError, FieldSpec, Pred, make_predicate
from detectors.yamlsrc import Node


def compile_exceptions(b: BodyCompiler) -> Pred | None:
    """The rule's exceptions as one predicate (None if it has none)."""
    raw = b.v.get("exceptions")
    if raw is None:
        return None
    if not isinstance(raw, list):
        b.err("'exceptions' must be a list", "exceptions")
        return None
    tests: list[Pred] = []
    for item in raw:
        if not isinstance(item, Node):
            b.err("An exception is a mapping (name, fields, comps, values)", "exceptions")
            continue
        t = _exception(b, item)
        if t is not None:
            tests.append(t)
    if not tests:
        return None
    return _any(tests)


def _any(tests: list[Pred]) -> Pred:
    """``any`` of the tests, without a generator for a single one (the common case)."""
    if len(tests) == 1:
        return tests[0]
    all_tests = tuple(tests)
    return lambda x: any(t(x) for t in all_tests)


def _exception(b: BodyCompiler, item: Node) -> Pred | None:
    name = item.get("name")
    for k in item:
        if k not in ("name", "fields", "comps", "values"):
            b.err(
                f"Unknown key '{k}' in exception '{name}' (name, fields, comps, values)",
                k,
                item,
            )
    if not isinstance(name, str):
        b.err("An exception needs a 'name'", None, item)
        return None
    fields = item.get("fields")
    single = isinstance(fields, str)
    names = [fields] if single else fields
    if not isinstance(names, list) or not names or not all(isinstance(f, str) for f in names):
        b.err(f"Exception '{name}' needs 'fields' (a field or a list)", "fields", item)
        return None
    specs: list[FieldSpec] = []
    for f in names:
        spec = F.resolve(f)
        if spec is None:
            b.err(f"Unknown field '{f}' in exception '{name}'", "fields", item)
            return None
        specs.append(spec)
    comps = item.get("comps", "in" if single else ["="] * len(specs))
    comps = [comps] * len(specs) if isinstance(comps, str) else comps
    if not isinstance(comps, list) or len(comps) != len(specs):
        b.err(f"Exception '{name}' needs one comparison per field", "comps", item)
        return None
    values = item.get("values") or []
    if not isinstance(values, list):
        b.err(f"Exception '{name}' needs 'values' as a list", "values", item)
        return None
    rows: list[list[Any]]
    if single:
        rows = [[values]] if comps[0] in LIST_OPS else [[v] for v in values]
    else:
        rows = []
        for row in values:
            if not isinstance(row, list) or len(row) != len(specs):
                b.err(
                    f"Each value of exception '{name}' must list {len(specs)} values "
                    f"({', '.join(names)})",
                    "values",
                    item,
                )
                return None
            rows.append(row)
    tests: list[Pred] = []
    for row in rows:
        preds: list[Pred] = []
        for spec, comp, value in zip(specs, comps, row, strict=True):
            op = "=" if comp == "==" else str(comp)
            val: Any
            if op in LIST_OPS or isinstance(value, list):
                vals = value if isinstance(value, list) else [value]
                val = tuple(b.rc.compiler.expand_list(str(x) for x in vals))
                if op not in LIST_OPS and op not in ("contains", "icontains"):
                    b.err(
                        f"Comparison '{op}' takes one value in exception '{name}'",
                        "values",
                        item,
                    )
                    return None
            elif spec.type == SET and op == "=":
                op, val = "contains", str(value)
            else:
                val = value if isinstance(value, str) else _lit(value)
            try:
                preds.append(make_predicate(spec, op, val))
            except ExprError as exc:
                b.err(f"{exc.message} in exception '{name}'", "values", item)
                return None
        if len(preds) == 1:
            tests.append(preds[0])
        else:
            ps = tuple(preds)
            tests.append(lambda x, ps=ps: all(p(x) for p in ps))  # type: ignore[misc]
    if single and comps[0] in LIST_OPS and not values:
        return None  # in/intersects/pmatch of no values (checked above): excludes no event
    return _any(tests) if tests else None


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
