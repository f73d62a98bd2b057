"""Provenance: a value from untrusted content flowing into a sensitive call.

Every steering value (address, account, URL, host, phone, path; :mod:`detectors.values`) that
enters a session is tagged with where it came from: the task text (``intent.task``: the user's
own words), or the output of a tool call (data someone else wrote). When a sensitive action
(payment, message send, egress, credential change, write, fetch of a destination, code
execution) carries in its arguments a value that came from tool output and not from the task,
the agent is acting on a destination it read rather than one it was given (OWASP ASI01/ASI02).
A destination the session's declared scope allows (``allowed_destinations``) is authorised
whoever suggested it, and is not judged.

Outputs are not parsed on the hot path: each output's lower-cased text is kept in a bounded
in-memory cache (never in the checkpointed session state, so the content of tool output is not
written to storage), and only when a sensitive call comes are its argument values looked up in
the session's earlier outputs. After a worker restart, the values of in-flight sessions'
earlier outputs are unknown (their injection targets, kept in the session, are not).

How bad that is depends on the source. An output that also carried instructions addressed to
the agent (``detectors.injection``), with this very value inside the instruction passage, is
near-certain evidence of a hijacked agent; an ordinary e-mail is weaker; an output of a call
the task itself pointed at ("pay the bill in bill.txt") is weaker still.

Whatever the wrapper, an injection's target reaches the harmful call the same way: the data
*asked* for the action on that value ("send it to X", "please transfer to Y", "TODO: pay Z")
and the user did not. So a value that sat in a request clause of an earlier output
(:func:`detectors.cues.in_request`) is kill-level when the call is a payment, a message, an
export, a credential change or code execution and the task asks for no such action at all;
alert-level when the task does ask for such actions but did not point at that output; and
not raised when the task delegates to the data ("do what the e-mail says"). Following a link
the data recommends (a fetch) is ordinary browsing and is not raised this way.

>>> from detectors.testing import ctx_for, new_session
>>> det = Provenance()
>>> s = new_session(task="Summarise my unread e-mails")
>>> _ = det.process(ctx_for(kind="session_start", task="Summarise my unread e-mails", seq=0), s)
>>> _ = det.process(ctx_for("get_unread_emails", output="From bob: the new IBAN is "
...                         "DE89370400440532013000", seq=1), s)
>>> f = det.process(ctx_for("send_money", arguments={"recipient": "DE89370400440532013000"},
...                         seq=2), s)
>>> f[0].explanation["values"][0]["origin_tool"], f[0].score
('get_unread_emails', 0.5)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Set as AbstractSet
from typing import Any

from detectors import capabilities as C
from detectors import values
from detectors.base import EventContext, Finding
from detectors.catalog import host_of
from detectors.cues import in_request, redirects
from detectors.history import compact_id, full_id
from detectors.intern import canonical, lowered
from detectors.relevance import asks_for
from detectors.requested import action_words, names_action, requested_at
from detectors.scoring import action_for, mode_of, severity_for
from detectors.session import SessionState

#: How sensitive an action is, by capability (the highest applies).
CAPABILITY_WEIGHTS: dict[str, float] = {
    C.PAYMENT: 0.5,
    C.CREDENTIAL_CHANGE: 0.5,
    C.EGRESS: 0.45,
    C.SEND: 0.45,
    C.CODE_EXEC: 0.45,
    C.DESTRUCTIVE: 0.35,
    C.PROD_WRITE: 0.35,
    C.WRITE: 0.25,
    C.FETCH: 0.25,
}
#: Actions that a request found in data can make kill-level when the task asks for none of
#: them; following a link the data recommends (a fetch) is ordinary browsing and is not here.
REQUEST_KILL_CAPS = frozenset({C.PAYMENT, C.SEND, C.EGRESS, C.CREDENTIAL_CHANGE, C.CODE_EXEC})
REQUEST_CAPS = REQUEST_KILL_CAPS | {C.DESTRUCTIVE, C.PROD_WRITE, C.WRITE}
#: Actions that a request in the data makes kill-level when the task asks for no action of
#: their kind at all: besides the above, changes to the user's things (a deletion, a record
#: update, a device schedule) that the data asked for by value or by name
#: (:mod:`detectors.requested`) and the user asked for nowhere.
_ASKED_KILL_CAPS = REQUEST_KILL_CAPS | {C.DESTRUCTIVE, C.PROD_WRITE, C.WRITE}
_PAYEE_KINDS = frozenset({values.IBAN, values.ACCOUNT})
_ADDRESS_KINDS = frozenset(
    {values.EMAIL, values.URL, values.HOST, values.IBAN, values.PHONE, values.ACCOUNT}
)


_BASE: dict[frozenset[str], float] = {}
#: task text kept per session (the root's and its sub-agents' tasks, lower-cased)
MAX_TASK_CHARS = 16_384
#: the injection targets of an output that had none (shared; never mutated)
_NO_TARGETS: dict[str, str] = {}
#: members of one output in ``Sources.outputs``
_OUT = 6
#: bytes of one output's event id in ``Sources.ids`` (zeros: the id is in ``outputs``)
_ID = 16
_NO_ID = bytes(_ID)
#: entries of each per-detector cache of pure functions of the task text (then it starts over)
_MAX_CACHED = 4096


_TASK_VALUES: dict[str, frozenset[str]] = {}


def _task_values(task: str) -> frozenset[str]:
    """The values a task text names (``values.extract``, cached per text: sessions of one
    agent often get the same task, and extracting them was ~5% of this detector's time)."""
    found = _TASK_VALUES.get(task)
    if found is None:
        if len(_TASK_VALUES) >= _MAX_CACHED:
            _TASK_VALUES.clear()
        found = _TASK_VALUES[task] = frozenset(values.extract(task))
    return found


class Sources:
    """Where a session's values can have come from: its task text (the root's and its
    sub-agents'), the values the task names, and its recent outputs - flat, six members each
    (seq, event id, tool, weight, injection score, injection targets) in one tuple of exactly
    its size: a tuple per output, or a list (which over-allocates), would cost more than what
    it holds.

    An output's event id is kept in ``ids``, 16 bytes per output, when it is a UUID in canonical
    form (most are), its place in ``outputs`` then ``None``; any other id is kept in
    ``outputs`` as it is (its 16 bytes in ``ids`` zeros). A ``bytes`` object per id cost 49
    bytes and a pointer; :meth:`eid` gives the compact id back
    (:func:`detectors.history.compact_id`).

    The task text is kept as declared (``text``: the very string the root's scope holds) and
    lower-cased on use from a bounded cache (``task``): a lower-cased copy per session was
    ~140 bytes of every live session.
    """

    __slots__ = ("text", "task_values", "outputs", "ids")

    def __init__(self, task: str, task_values: AbstractSet[str]) -> None:
        self.text = task
        #: a sorted tuple (a frozenset costs 216 bytes with one value in it)
        self.task_values: tuple[str, ...] | frozenset[str] = canonical(tuple(sorted(task_values)))
        self.outputs: tuple[Any, ...] = ()
        self.ids = b""

    @property
    def task(self) -> str:
        """The task text, lower-cased."""
        return lowered(self.text)

    def eid(self, k: int) -> str | bytes:
        """The compact event id of the output at ``outputs[k]`` (``k``: a multiple of 6)."""
        e = self.outputs[k + 1]
        if e is not None:
            return e  # type: ignore[no-any-return]
        j = k // _OUT * _ID
        return self.ids[j : j + _ID]

    def add(self, seq: int | None, eid: str | bytes, *rest: Any) -> None:
        """Append an output (``eid``: compact, ``rest``: tool, weight, injection score and
        targets)."""
        if type(eid) is bytes:
            self.outputs = (*self.outputs, seq, None, *rest)
            self.ids += eid
        else:
            self.outputs = (*self.outputs, seq, eid, *rest)
            self.ids += _NO_ID

    def drop(self, k: int) -> None:
        """Forget the output at ``outputs[k]``."""
        outputs, ids, j = self.outputs, self.ids, k // _OUT * _ID
        self.outputs = outputs[:k] + outputs[k + _OUT :]
        self.ids = ids[:j] + ids[j + _ID :]

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.text, self.task_values, self.outputs, self.ids)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        # checkpoints written before kept the text lower-cased: lower-casing it again is a no-op
        self.text, self.task_values = state[0], state[1]
        if len(state) == 4:
            self.outputs, self.ids = state[2], state[3]
            return
        # the layout before: a list, each output's compact id in it
        self.outputs, self.ids = (), b""
        old = state[2]
        for k in range(0, len(old), _OUT):
            self.add(old[k], compact_id(full_id(old[k + 1])), *old[k + 2 : k + _OUT])


def _find(text: str, v: str, start: int, whole: bool) -> int:
    """The next index of ``v`` in ``text`` from ``start`` (-1 if none); with ``whole``, only
    where ``v`` is not part of a longer word."""
    i = text.find(v, start)
    while whole and i >= 0:
        j = i + len(v)
        if (i == 0 or not text[i - 1].isalnum()) and (j >= len(text) or not text[j].isalnum()):
            break
        i = text.find(v, i + 1)
    return i


def _base_weight(caps: frozenset[str]) -> float:
    """How sensitive an action with these capabilities is (cached per set)."""
    w = _BASE.get(caps)
    if w is None:
        w = max((CAPABILITY_WEIGHTS.get(c, 0.0) for c in caps), default=0.0)
        if len(_BASE) < 4096:
            _BASE[caps] = w
    return w


class Provenance:
    """Flags sensitive calls whose arguments carry values taken from tool output."""

    def __init__(
        self,
        name: str = "AW-PROV-001",
        injection_detector: str = "AW-INJ-001",
        untrusted_weight: float = 1.0,
        other_output_weight: float = 0.6,
        endorsed_weight: float = 0.3,
        unknown_origin_score: float = 0.1,
        request_off_task: float = 0.9,
        request_on_task: float = 0.7,
        alert_at: float = 0.6,
        kill_at: float = 0.9,
        max_outputs: int = 64,
        max_output_chars: int = 8_000,
        max_cached_outputs: int = 20_000,
        max_cached_chars: int = 8_000_000,
        mode: str = "enforce",
        tags: tuple[str, ...] = ("ASI01", "ASI02"),
        attacks: tuple[str, ...] = ("AML.T0051.001", "AML.T0086"),
    ) -> None:
        self.name = name
        self.injection_detector = injection_detector
        self.untrusted_weight = untrusted_weight
        self.other_output_weight = other_output_weight
        self.endorsed_weight = endorsed_weight
        self.unknown_origin_score = unknown_origin_score
        self.request_off_task = request_off_task
        self.request_on_task = request_on_task
        self.alert_at = alert_at
        self.kill_at = kill_at
        self.max_outputs = max_outputs
        self.max_output_chars = max_output_chars
        self.max_cached_outputs = max_cached_outputs
        #: the texts' budget in characters as well as in outputs: 20,000 outputs of up to
        #: 8,000 characters would otherwise be 160 MB per partition at worst
        self.max_cached_chars = max_cached_chars
        self.mode = mode
        self.tags = tags
        self.attacks = attacks
        #: (root session, compact event id) -> lower-cased output text; memory only (module doc)
        self._texts: OrderedDict[tuple[str, str | bytes], str] = OrderedDict()
        self._cached_chars = 0
        #: (task text, capabilities) -> whether the task asks for none of them: a pure
        #: function of its key, asked on every sensitive call (a regular-expression search of
        #: the task per capability, ~3 µs an event on the simulated traffic); memory only
        self._off: dict[tuple[str, frozenset[str]], bool] = {}
        #: (task text, tool name) -> ``names_action``: the same, for the task's words
        self._named: dict[tuple[str, str], bool] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_texts"], state["_cached_chars"] = OrderedDict(), 0
        state["_off"], state["_named"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_off", {})  # learned state pickled before these caches
        self.__dict__.setdefault("_named", {})

    def _state(self, session: SessionState) -> Sources:
        st: Sources | None = session.det.get(self.name)
        if st is None:
            task = session.scope_of(session.root_id).task or ""
            st = session.det[self.name] = Sources(task, _task_values(task))
        return st

    def _from_task(self, st: Sources, v: str) -> bool:
        return v in st.task_values or (len(v) >= 3 and v in lowered(st.text))

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        ev = ctx.event
        if ev.kind == "session_start" and ev.intent is not None and ev.intent.task:
            st = self._state(session)
            low = ev.intent.task.lower()
            task = st.task
            # a sub-agent's own task (the root's is there already), while there is room
            if low not in task and len(task) + len(low) <= MAX_TASK_CHARS:
                st.text = (task + "\n" + low).strip()
                more = values.extract(ev.intent.task)
                st.task_values = canonical(tuple(sorted(more.union(st.task_values))))
            return []
        tool = ev.tool
        if tool is None:
            return []
        st = self._state(session)
        base = _base_weight(ctx.caps)
        found: list[Finding] = []
        if base > 0.0 and tool.arguments:
            args = ctx.argument_values()
            if args:
                found = self._judge(ctx, session, st, args, base)
        if base > 0.0 and ctx.caps & REQUEST_CAPS and (not found or found[0].score < self.kill_at):
            asked = self._requested(ctx, session, st)
            if asked is not None and (not found or asked.score > found[0].score):
                found = [asked]
        if tool.output:
            self._record(ctx, session, st)
        return found

    # -- recording where values came from -------------------------------------------------
    def _record(
        self,
        ctx: EventContext,
        session: SessionState,
        st: Sources,
    ) -> None:
        ev = ctx.event
        assert ev.tool is not None and ev.tool.output is not None
        inj: dict[str, Any] = session.det.get(self.injection_detector) or {}
        inj_score, inj_targets = 0.0, {}
        if ev.session.seq is not None:
            rec = inj.get("outputs", {}).get(ev.session.seq)
            if rec is not None and rec[1] == ev.event_id:
                inj_score, inj_targets = rec[0], rec[3]
        endorsed = False
        if ev.tool.arguments:
            task_values, task = st.task_values, lowered(st.text)
            for a in ev.tool.arguments.values():
                if isinstance(a, str):
                    v = a.strip().lower()  # _from_task, with the task looked up once
                    if v in task_values or (len(v) >= 3 and v in task):
                        endorsed = True
                        break
        if endorsed:
            weight = self.endorsed_weight
        elif C.UNTRUSTED_INPUT in ctx.caps:
            weight = self.untrusted_weight
        else:
            weight = self.other_output_weight
        eid = compact_id(ev.event_id)
        st.add(
            ev.session.seq,
            eid,
            canonical(ev.tool.name),
            weight,
            inj_score,
            inj_targets or _NO_TARGETS,
        )
        texts = self._texts
        text = ev.tool.output[: self.max_output_chars].lower()
        replaced = texts.get(key := (session.root_id, eid))
        texts[key] = text
        self._cached_chars += len(text) - (0 if replaced is None else len(replaced))
        outputs = st.outputs
        if len(outputs) > _OUT * self.max_outputs:
            # Forget the least telling output: the lowest injection score, then the oldest;
            # and its text, so one busy session cannot push other sessions' texts out.
            drop = min(range(0, len(outputs), _OUT), key=lambda i: (outputs[i + 4], i))
            gone = texts.pop((session.root_id, st.eid(drop)), None)
            if gone is not None:
                self._cached_chars -= len(gone)
            st.drop(drop)
        while texts and (
            len(texts) > self.max_cached_outputs or self._cached_chars > self.max_cached_chars
        ):
            self._cached_chars -= len(texts.popitem(last=False)[1])

    def _origin(
        self, session: SessionState, st: Sources, v: str, whole: bool = False
    ) -> tuple[Any, ...] | None:
        """The most telling earlier output that contained ``v``: (seq, event id, tool, weight,
        injection score, whether ``v`` was inside the injected passage, whether ``v`` was
        inside a request - a clause that tells the reader to act -, and whether that request
        redirects something to it: "instead", "our account changed", "must go to").
        ``whole``: only occurrences that are whole tokens count (identifiers: ``p-12`` is not
        in ``p-123``)."""
        best: tuple[Any, ...] | None = None
        outputs = st.outputs
        for k in range(0, len(outputs), _OUT):
            seq, event_id, tool, weight, inj_score, inj_targets = outputs[k : k + _OUT]
            if event_id is None:
                event_id = st.eid(k)
            in_passage = v in inj_targets
            text = self._texts.get((session.root_id, event_id))
            i = _find(text, v, 0, whole) if text is not None else -1
            if not in_passage and i < 0:
                continue
            request = False
            while i >= 0 and not request:
                request = in_request(text, i)  # type: ignore[arg-type]
                i = _find(text, v, i + len(v), whole) if not request else i  # type: ignore[arg-type]
            redirect = request and redirects(text, i)  # type: ignore[arg-type]
            cand = (seq, full_id(event_id), tool, weight, inj_score, in_passage, request, redirect)
            if best is None or (cand[5], cand[6], cand[4], cand[3]) > (
                best[5],
                best[6],
                best[4],
                best[3],
            ):
                best = cand
        return best

    def _off_task(self, st: Sources, caps: frozenset[str]) -> bool:
        """The task asks for none of this call's sensitive capabilities (cached)."""
        task: str = st.task
        key = (task, caps)
        off = self._off.get(key)
        if off is None:
            off = not any(asks_for(c, task) for c in caps)
            if len(self._off) >= _MAX_CACHED:
                self._off.clear()
            self._off[key] = off
        return off

    def _names_action(self, st: Sources, tool: str) -> bool:
        """The task itself asks for this tool's action (``names_action``, cached)."""
        key = (st.task, tool)
        named = self._named.get(key)
        if named is None:
            named = names_action(st.task, tool)
            if len(self._named) >= _MAX_CACHED:
                self._named.clear()
            self._named[key] = named
        return named

    def _requested(self, ctx: EventContext, session: SessionState, st: Sources) -> Finding | None:
        """A call that carries no value from the data but does what a request in the data
        asked for, by name ("please unlock the front door" -> ``unlock_door``), when the
        task asks for no action of its kind and does not hand its instructions to the data."""
        ev = ctx.event
        assert ev.tool is not None
        outputs = st.outputs
        if not outputs or not action_words(ev.tool.name)[1]:
            return None  # nothing to have asked, or a tool no request can name
        inj: dict[str, Any] = session.det.get(self.injection_detector) or {}
        if inj.get("delegated"):
            return None
        caps = ctx.caps & REQUEST_CAPS
        # What the task says, when known already (pure functions of the task, cached; a new
        # task's first look costs regular-expression searches: only for an output that asked)
        task = st.task
        if self._off.get((task, caps)) is False or self._named.get((task, ev.tool.name)):
            return None
        # the newest output that asked for this action
        texts, root = self._texts, session.root_id
        for k in range(len(outputs) - _OUT, -1, -_OUT):
            seq, event_id, tool = outputs[k : k + 3]
            if event_id is None:
                event_id = st.eid(k)
            text = texts.get((root, event_id))
            if text is None or requested_at(text, ev.tool.name) < 0:
                continue
            if not self._off_task(st, caps) or self._names_action(st, ev.tool.name):
                return None
            score = self.request_off_task if caps & _ASKED_KILL_CAPS else self.request_on_task
            names = sorted(c for c in ctx.caps if c in CAPABILITY_WEIGHTS)
            return Finding(
                detector=self.name,
                title="Sensitive call does what untrusted content asked for",
                message=(
                    f"{ev.tool.name} ({', '.join(names)}) in session {session.root_id} does "
                    f"what a request in the output of {tool} (seq {seq}) asked for, and the "
                    f"task asks for no such action; score {score:.2f}."
                ),
                score=score,
                severity=severity_for(score, kill_at=self.kill_at),
                action=action_for(score, alert_at=self.alert_at, kill_at=self.kill_at),
                mode=mode_of(self.mode),
                evidence=(full_id(event_id), ev.event_id),
                tags=self.tags,
                attacks=self.attacks,
                key=self.name,
                stage="requested",
                explanation={
                    "tool": ev.tool.name,
                    "capabilities": names,
                    "requested_by": {"origin_tool": tool, "origin_seq": seq},
                },
            )
        return None

    # -- judging a call --------------------------------------------------------------------
    def _judge(
        self,
        ctx: EventContext,
        session: SessionState,
        st: Sources,
        args: dict[str, tuple[str, str]],
        base: float,
    ) -> list[Finding]:
        ev = ctx.event
        assert ev.tool is not None
        scored: list[tuple[float, str, str, str, tuple[Any, ...] | None]] = []
        inj: dict[str, Any] = session.det.get(self.injection_detector) or {}
        delegated = bool(inj.get("delegated"))
        off_task: bool | None = None
        scope = session.scope_of(ev.session.id)
        for v, (arg, kind) in args.items():
            if self._from_task(st, v) or len(v) < 3:
                continue
            if (
                kind in _ADDRESS_KINDS
                and scope.allowed_destinations is not None
                and scope.allows_destination(v, host_of(v))
            ):
                continue  # the session's declared scope authorises it, whoever suggested it
            o = self._origin(session, st, v, kind == values.REF) if kind != values.IDENT else None
            if o is None:
                if kind in _ADDRESS_KINDS:
                    scored.append((self.unknown_origin_score * base * 2, v, arg, kind, None))
                continue
            _, _, _, weight, inj_score, in_passage, request, redirect = o
            if kind == values.REF and not (request or (in_passage and inj_score > 0)):
                continue  # an id read from a listing and used: the ordinary way to use tools
            # a task that hands its instructions to the data ("do what the e-mail asks") vouches
            # for the data as much as a task that names its source
            s = base * (min(weight, self.endorsed_weight) if delegated else weight)
            endorsed = weight <= self.endorsed_weight
            if in_passage and inj_score > 0:
                # Inside an injected passage: near-certain when the passage addressed the agent
                # (its score is kill-level), as telling as the passage otherwise.
                strong = inj_score >= self.kill_at and not endorsed
                s = max(s, 0.5 + 0.5 * inj_score if strong else inj_score)
            elif inj_score > 0:
                s = 1.0 - (1.0 - s) * (1.0 - 0.5 * inj_score * weight)
            if request and not delegated and ctx.caps & REQUEST_CAPS:
                # The data asked for this action on this value and the user did not: the agent
                # is following instructions it read. Kill-level when the task asks for no such
                # action at all (even from a source the task pointed at: "look up the meeting"
                # does not mean "do what its description says"); alert-level when the task
                # does ask for such actions, unless it pointed at this very source.
                if off_task is None:
                    off_task = self._off_task(st, ctx.caps & REQUEST_CAPS)
                if off_task and ctx.caps & _ASKED_KILL_CAPS:
                    s = max(s, self.request_off_task)
                elif off_task:
                    s = max(s, self.request_on_task)  # a write the task asks for nowhere
                elif (
                    redirect
                    and not endorsed
                    and weight >= self.untrusted_weight
                    and kind in _PAYEE_KINDS
                    and C.PAYMENT in ctx.caps
                ):
                    # payment redirection: content the task did not point at asks to pay
                    # this account *instead* ("our bank details changed", "the refund must go
                    # to ..."), however the task is worded
                    s = max(s, self.request_off_task)
                elif not endorsed:
                    s = max(s, self.request_on_task)
            scored.append((min(1.0, s), v, arg, kind, o))
        if not scored:
            return []
        scored.sort(key=lambda x: -x[0])
        score = round(scored[0][0], 4)
        evidence = tuple(
            dict.fromkeys([o[1] for _, _, _, _, o in scored if o is not None] + [ev.event_id])
        )
        top = scored[0]
        src = f"the output of {top[4][2]} (seq {top[4][0]})" if top[4] else "no earlier content"
        action = action_for(score, alert_at=self.alert_at, kill_at=self.kill_at)
        caps = sorted(c for c in ctx.caps if c in CAPABILITY_WEIGHTS)
        return [
            Finding(
                detector=self.name,
                title="Sensitive call uses a value taken from tool output",
                message=(
                    f"{ev.tool.name} ({', '.join(caps)}) in session {session.root_id} sends "
                    f"{top[2]}={top[1]!r}, which came from {src}, not from the task; "
                    f"score {score:.2f}."
                ),
                score=score,
                severity=severity_for(score, kill_at=self.kill_at),
                action=action,
                mode=mode_of(self.mode),
                evidence=evidence,
                tags=self.tags,
                attacks=self.attacks,
                key=self.name,
                stage=(
                    "injected"
                    if any(o is not None and o[5] for *_, o in scored)
                    else "requested"
                    if any(o is not None and o[6] for *_, o in scored)
                    else None
                ),
                explanation={
                    "tool": ev.tool.name,
                    "capabilities": caps,
                    "values": [
                        {
                            "value": v,
                            "argument": arg,
                            "kind": kind,
                            "score": round(s, 4),
                            "origin_tool": o[2] if o else None,
                            "origin_seq": o[0] if o else None,
                            "origin_injection": round(o[4], 4) if o else 0.0,
                            "in_injected_passage": bool(o[5]) if o else False,
                            "in_request": bool(o[6]) if o else False,
                        }
                        for s, v, arg, kind, o in scored[:8]
                    ],
                },
            )
        ]
