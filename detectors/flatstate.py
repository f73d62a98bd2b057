"""A session's checkpoint form: one flat tuple of plain values behind one reconstructor.

The worker pickles every session that changed at each checkpoint (every
``AGENTWATCH_CHECKPOINT_INTERVAL_S``), so at moderate rates most active sessions are pickled
again at every checkpoint. Pickled object by object,
a session cost ~46 µs: each of its ~20 objects (members, scopes, the step log, the
detectors' states, the small maps, alerts) costs the C pickler a lookup of its class or
reconstructor (~2-3 µs the first time in a record), a ``__reduce_ex__`` round (~1 µs, a
frozen dataclass's ``__getstate__`` in Python more) and the opcodes to rebuild it, on top of
its values. :func:`reduce_session` (``SessionState.__reduce__``) gives the pickler instead
one tuple of plain values (strings, numbers, tuples, the bytes the step log, the dedup keys
and the provenance ids already are) and one reconstructor, :func:`session_from`:

``(FLAT_LAYOUT, root_id, tenant, agent_id, members, log, det, alerts, contributions, risk,
started_ts, last_ts, last_active, ended, kill_jti, kill_ts, event_count, seen)`` where

* ``members``: one tuple per member, its slots in ``_MEMBER_FIELDS`` order, then its scope
  (``None``: unrestricted; else ``_SCOPE_FIELDS``);
* ``log``: the step log's own pickled tuple (``StepLog.__getstate__``, versioned), or None;
* ``det``: ``(name, tag, state, ...)``: a state of a class in ``_STATE_CLASSES`` as its own
  ``__getstate__`` (``tag``: its number there; loaded with its ``__setstate__``), the rule
  state as plain tuples (``tag`` 6, :func:`_rules_flat`: it is most of a session's small
  objects), any other state as it is (``tag`` 0: pickled as before);
* ``alerts``: ``(key, values, ...)``, each alert's values in ``_ALERT_FIELDS`` order;
* ``contributions``: the small map's flat ``(key, value, ...)``;
* ``seen``: None, the bare bytes of the dedup keys, or ``RecentIds.__getstate__``.

Held-back events are not state (they are re-read from the source after a restart).
Checkpoints of the object-by-object layouts (``SessionState.__setstate__``) still load.
"""

from __future__ import annotations

import copyreg
import importlib
from operator import attrgetter
from typing import Any

from detectors.alerting import AlertState
from detectors.history import RecentIds, StepLog
from detectors.session import (
    NO_ENTRIES,
    UNRESTRICTED,
    Member,
    Members,
    Scope,
    SessionState,
    _states_from,
    slot_names,
)
from detectors.smallmap import SmallMap

#: version of the flat layout (the object-by-object layouts were 1 to 3)
FLAT_LAYOUT = 4

_MEMBER_FIELDS = (
    "session_id",
    "agent_id",
    "parent_id",
    "workload_id",
    "credential_iss",
    "credential_jti",
    "started_ts",
    "ended_ts",
    "last_seq",
    "granted_scopes",
)
_SCOPE_FIELDS = (
    "task",
    "allowed_tools",
    "allowed_destinations",
    "allowed_environments",
    "max_duration_s",
)
#: the fields of an alert, in the order the flat layout keeps them (a test checks this is
#: every field of ``AlertState``: a new field needs a new layout version here)
_ALERT_FIELDS = (
    "uid",
    "key",
    "detector",
    "title",
    "message",
    "severity",
    "score",
    "mode",
    "action",
    "session_id",
    "evidence",
    "tags",
    "attacks",
    "stage",
    "created_ts",
    "modified_ts",
    "first_seen_ts",
    "last_seen_ts",
    "trigger_event_id",
    "trigger_seq",
    "rule_version",
    "explanation",
    "version",
    "suppressed",
    "response",
    "kill_jti",
    "risk",
)
_member_values = attrgetter(*_MEMBER_FIELDS)
_scope_values = attrgetter(*_SCOPE_FIELDS)
_alert_values = attrgetter(*_ALERT_FIELDS)

#: detectors' per-session state classes kept as their own ``__getstate__`` (tag -> module,
#: class). Tags are part of the layout: never renumber one, only add.
_STATE_CLASSES: dict[int, tuple[str, str]] = {
    1: ("detectors.online.transitions", "Walk"),
    2: ("detectors.online.session_anomaly", "Usage"),
    3: ("detectors.online.identity_drift", "Measures"),
    4: ("detectors.provenance", "Sources"),
    5: ("detectors.rules.matching", "RuleState"),
}
#: the rule state, as :func:`_rules_flat` keeps it (its partial matches and timers, counts
#: and facts as plain tuples instead of a small map, a ``RuleKeys`` or a ``SeqKey`` each)
_RULES_FLAT = 6
#: the ``RuleState`` layout (``detectors.rules.matching.LAYOUT``) tag 6 keeps
_RULES_LAYOUT = 2
_TAG_OF: dict[type, int] = {}
_CLASS_OF: dict[int, Any] = {}
#: ``detectors.rules.matching``'s RuleKeys and SeqKey, when its layout is the one
#: :func:`_rules_flat` knows
_RULE_TYPES: list[Any] = []

_liter = list.__iter__


def _resolve() -> None:
    """Import the classes of ``_STATE_CLASSES`` (once: at the first session pickled or
    loaded; they import this package's ``session`` module, so not at import time). A class
    that pickles itself some other way than ``__getstate__``/``__setstate__`` is left to
    pickle (tag 0)."""
    for tag, (module, name) in _STATE_CLASSES.items():
        cls = getattr(importlib.import_module(module), name)
        plain = cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
        if plain and hasattr(cls, "__setstate__") and "__getstate__" in vars(cls):
            _TAG_OF[cls] = tag
        _CLASS_OF[tag] = cls
    matching = importlib.import_module("detectors.rules.matching")
    rules = _CLASS_OF[5]
    if (
        matching.LAYOUT == _RULES_LAYOUT
        and rules.__slots__ == ("r", "live", "facts", "deadline")
        and matching.SeqKey.__slots__ == ("p", "t")
        and matching.RuleKeys.__slots__ == ("shape",)
    ):
        _RULE_TYPES[:] = [matching.RuleKeys, matching.SeqKey]


def reduce_session(s: SessionState) -> tuple[Any, ...]:
    """``SessionState.__reduce__``: the flat form (see the module docstring). A subclass
    (other bounds) is pickled object by object, as its class."""
    if type(s) is not SessionState:
        return (copyreg.__newobj__, (type(s),), s.__getstate__())  # type: ignore[attr-defined]
    if not _CLASS_OF:
        _resolve()
    members = tuple([member_flat(m) for m in _liter(s.members)])
    log = s.log
    det: list[Any] = []
    tag_of = _TAG_OF
    for name, state in zip(slot_names(), _liter(s.det), strict=False):
        if state is not None:
            tag = tag_of.get(type(state), 0)
            if tag == 5 and _RULE_TYPES:
                flat_rules = _rules_flat(state)
                if flat_rules is not None:
                    det += (name, _RULES_FLAT, flat_rules)
                    continue
            det += (name, tag, state.__getstate__() if tag else state)
    alerts: list[Any] = []
    for key, alert in s.alerts.items():
        alerts += (key, _alert_values(alert))
    c = s.contributions  # a small map, or the shared empty dict
    contributions = tuple(_liter(c)) if isinstance(c, list) else tuple(_flat_items(c))
    seen = s.seen
    flat = (
        FLAT_LAYOUT,
        s.root_id,
        s.tenant,
        s.agent_id,
        members,
        None if log is None else log.__getstate__(),
        tuple(det),
        tuple(alerts),
        contributions,
        s.risk,
        s.started_ts,
        s.last_ts,
        s.last_active,
        s.ended,
        s.kill_jti,
        s.kill_ts,
        s.event_count,
        seen if seen is None or type(seen) is bytes else seen.__getstate__(),
    )
    return (session_from, (flat,))


def session_from(flat: tuple[Any, ...]) -> SessionState:
    """A session from its flat form (the reconstructor pickles name: keep it)."""
    if flat[0] != FLAT_LAYOUT:
        raise ValueError(f"flat session state of layout version {flat[0]} is not supported")
    if not _CLASS_OF:
        _resolve()
    (
        _,
        root_id,
        tenant,
        agent_id,
        members,
        log,
        det,
        alerts,
        contributions,
        risk,
        started_ts,
        last_ts,
        last_active,
        ended,
        kill_jti,
        kill_ts,
        event_count,
        seen,
    ) = flat
    s = SessionState.__new__(SessionState)
    s.root_id, s.tenant, s.agent_id = root_id, tenant, agent_id
    s.members = Members([member_from(m) for m in members])
    if log is None:
        s.log = None
    else:
        s.log = StepLog.__new__(StepLog)
        s.log.__setstate__(log)
    pairs = []
    for i in range(0, len(det), 3):
        name, tag, state = det[i : i + 3]
        if tag == _RULES_FLAT:
            state = _rules_from(state)
        elif tag:
            cls = _CLASS_OF[tag]
            obj = cls.__new__(cls)
            obj.__setstate__(state)
            state = obj
        pairs.append((name, state))
    s.det = _states_from(pairs)
    s.alerts = (
        {alerts[i]: AlertState(*alerts[i + 1]) for i in range(0, len(alerts), 2)}
        if alerts
        else NO_ENTRIES
    )
    s.contributions = _small_map(contributions) if contributions else NO_ENTRIES  # type: ignore[assignment]
    s.risk, s.started_ts, s.last_ts, s.last_active = risk, started_ts, last_ts, last_active
    s.ended, s.kill_jti, s.kill_ts, s.event_count = ended, kill_jti, kill_ts, event_count
    if type(seen) is tuple:
        ids = RecentIds.__new__(RecentIds)
        ids.__setstate__(seen)
        s.seen = ids
    else:
        s.seen = seen
    s.pending = ()
    return s


def _flat_items(d: dict[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for kv in d.items():
        out += kv
    return out


def member_flat(m: Member) -> tuple[Any, ...]:
    """A member as plain values: its slots in ``_MEMBER_FIELDS`` order, then its scope (None:
    unrestricted, else ``_SCOPE_FIELDS``)."""
    scope = m.scope
    return (*_member_values(m), None if scope is UNRESTRICTED else _scope_values(scope))


def member_from(values: tuple[Any, ...]) -> Member:
    """The member :func:`member_flat` kept."""
    m = Member.__new__(Member)
    for k, v in zip(_MEMBER_FIELDS, values, strict=False):
        setattr(m, k, v)
    scope = values[len(_MEMBER_FIELDS)]
    m.scope = UNRESTRICTED if scope is None else Scope(*scope)
    return m


def _rules_flat(st: Any) -> tuple[Any, ...] | None:
    """A ``RuleState`` (``detectors.rules.matching``) as plain tuples: ``(rules, live, facts,
    deadline)``, ``rules`` as ``(rule id, shape, keys, ...)``, ``keys`` and ``facts`` as
    ``(key, kind, value, ...)``: ``kind`` 1 a ``SeqKey``'s ``(p, t)``, 2 a small map's flat
    entries, 0 the value as it is. None if it holds something else than that layout's."""
    rule_keys, seq_key = _RULE_TYPES[0], _RULE_TYPES[1]
    rules: list[Any] = []
    it = _liter(st.r)
    for rid, keys in zip(it, it, strict=True):
        if type(keys) is not rule_keys:
            return None
        values: list[Any] = []
        kit = _liter(keys)
        for key, v in zip(kit, kit, strict=True):
            t = type(v)
            if t is seq_key:
                values += (key, 1, (v.p, v.t))
            elif t is SmallMap:
                values += (key, 2, tuple(_liter(v)))
            else:
                values += (key, 0, v)
        rules += (rid, keys.shape, tuple(values))
    facts: list[Any] = []
    fit = _liter(st.facts)
    for key, v in zip(fit, fit, strict=True):
        if type(v) is SmallMap:
            facts += (key, 2, tuple(_liter(v)))
        else:
            facts += (key, 0, v)
    return (tuple(rules), st.live, tuple(facts), st.deadline)


def _rules_from(flat: tuple[Any, ...]) -> Any:
    """The ``RuleState`` :func:`_rules_flat` kept."""
    rules, live, facts, deadline = flat
    matching = importlib.import_module("detectors.rules.matching")
    rule_keys, seq_key = matching.RuleKeys, matching.SeqKey
    r: list[Any] = []
    for i in range(0, len(rules), 3):
        rid, shape, values = rules[i : i + 3]
        keys = rule_keys.__new__(rule_keys)
        keys.shape = shape
        list.__init__(keys, _unboxed(values, seq_key))
        r += (rid, keys)
    st = _CLASS_OF[5].__new__(_CLASS_OF[5])
    facts_map = _small_map(_unboxed(facts, seq_key))
    st.__setstate__((_small_map(r), live, facts_map, deadline, _RULES_LAYOUT))
    return st


def _unboxed(flat: tuple[Any, ...], seq_key: Any) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(flat), 3):
        key, kind, v = flat[i : i + 3]
        if kind == 1:
            v = seq_key(*v)
        elif kind == 2:
            v = _small_map(v)
        out += (key, v)
    return out


def _small_map(flat: Any) -> SmallMap:
    m = SmallMap()
    list.__init__(m, flat)
    return m
