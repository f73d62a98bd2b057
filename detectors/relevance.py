"""Task-relevance drift: how far a session's actions move from its declared task.

The task text (``intent.task``) says what the agent was asked to do. Each sensitive action is
scored by how little it has to do with that text, explainably:

* **capability relevance** - does the task ask for this kind of action at all? Each
  capability has cue words (payment: pay, transfer, send money, rent, bill...; message send:
  send, email, message, tell, post, reply...; credential change: password, access...), in
  several languages; an action whose capability the task never mentions is off-task.
* **tool relevance** - do the tool name's words (or their stems) occur in the task?
* **new destinations** - does the call carry an address-shaped value (e-mail, IBAN, URL...)
  that the task does not contain?

The step score is ``sensitivity x (off-capability, off-tool, new-destination)`` combined; it
is an observation (never an alert alone) that raises the session's risk when other detectors
see something too. A lexical model: no per-event inference. Tool-word stems are cached per
tool name.

>>> from detectors.testing import ctx_for, new_session
>>> det = TaskRelevance()
>>> s = new_session(task="How much did I spend on groceries in March?")
>>> f = det.process(ctx_for("send_money", arguments={"recipient": "GB29NWBK60161331926819"}), s)
>>> f[0].explanation["off_capability"], f[0].explanation["new_destinations"]
(True, ['gb29nwbk60161331926819'])
>>> s2 = new_session(task="Please pay my rent to GB29NWBK60161331926819")
>>> det.process(ctx_for("send_money", arguments={"recipient": "GB29NWBK60161331926819"}), s2)
[]
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from detectors import capabilities as C
from detectors import values
from detectors.base import EventContext, Finding
from detectors.catalog import tokens
from detectors.intern import canonical, lowered
from detectors.scoring import adds_nothing, mode_of
from detectors.session import SessionState, slot_of, state_at, states_len

#: Words in a task that ask for actions of a capability (stems; matched as word prefixes).
CAPABILITY_CUES: dict[str, tuple[str, ...]] = {
    C.PAYMENT: (
        "pay",
        "paid",
        "transfer",
        "money",
        "send",
        "rent",
        "bill",
        "invoice",
        "refund",
        "transaction",
        "schedul",
        "standing order",
        "wire",
        "iban",
        "amount",
        "purchase",
        "subscription",
        "recurring",
        "payment",
        "fee",
        "pag",
        "überweis",
        "zahl",
        "virement",
        "payer",
        "bonifico",
        "pagar",
        "перевед",
        "оплат",
        "支付",
        "付款",
        "转账",
        "支払",
        "振込",
        "송금",
        "결제",
    ),
    C.SEND: (
        "send",
        "email",
        "e-mail",
        "mail",
        "message",
        "tell",
        "reply",
        "respond",
        "post",
        "share",
        "forward",
        "notify",
        "inform",
        "invite",
        "write",
        "contact",
        "dm",
        "channel",
        "ask",
        "let",
        "remind",
        "feedback",
        "congrat",
        "envi",
        "mand",
        "schick",
        "send",
        "nachricht",
        "envoy",
        "messag",
        "invia",
        "отправ",
        "напиш",
        "发送",
        "发",
        "送",
        "보내",
    ),
    C.EGRESS: ("upload", "export", "send", "share", "post", "publish", "backup", "sync"),
    C.CREDENTIAL_CHANGE: (
        "unlock",
        "grant",
        "revoke",
        "authenticat",
        "two-factor",
        "password",
        "passcode",
        "credential",
        "access",
        "permission",
        "role",
        "security",
        "login",
        "account",
        "2fa",
        "mfa",
        "token",
        "key",
        "contraseñ",
        "passwort",
        "mot de passe",
        "пароль",
        "密码",
        "パスワード",
        "비밀번호",
    ),
    C.DESTRUCTIVE: (
        "delete",
        "remove",
        "clean",
        "cancel",
        "drop",
        "purge",
        "erase",
        "lösch",
        "supprim",
        "elimin",
        "borr",
        "удал",
        "删除",
        "削除",
        "삭제",
    ),
    C.CODE_EXEC: ("run", "execute", "script", "command", "code", "install", "build", "test"),
    C.WRITE: (
        "add",
        "creat",
        "updat",
        "chang",
        "set",
        "book",
        "reserv",
        "schedul",
        "invit",
        "edit",
        "modif",
        "append",
        "writ",
        "save",
        "make",
        "organi",
        "plan",
        "arrang",
        "move",
        "renam",
        "calendar",
        "event",
        "meeting",
        "file",
        "appoint",
        "remind",
    ),
    C.FETCH: (
        "visit",
        "open",
        "read",
        "browse",
        "website",
        "webpage",
        "page",
        "url",
        "link",
        "www",
        "http",
        "article",
        "site",
        "check",
        "summar",
        "look",
    ),
}
SENSITIVITY: dict[str, float] = {
    C.PAYMENT: 0.5,
    C.CREDENTIAL_CHANGE: 0.5,
    C.SEND: 0.35,
    C.EGRESS: 0.4,
    C.CODE_EXEC: 0.4,
    C.DESTRUCTIVE: 0.35,
    C.WRITE: 0.2,
    C.FETCH: 0.15,
}
_WORD_RE = re.compile(r"\w+")
#: argument values that are names and ids, not addresses: not "new destinations"
_NOT_DESTINATIONS = frozenset({values.IDENT, values.REF})
#: tasks whose derived words and values are kept (see ``TaskRelevance._tasks``)
TASK_CACHE = 4096
_STOP = frozenset("get set the a an to of for by in on at with from my me is".split())


def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    """One search for any of ``cues``: Latin-script cues are word prefixes ("latest" does not
    ask for a "test"); CJK text has no spaces between words.

    The Latin cues share one look-behind, in their order (``(?<!w)(?:a|b)`` matches what
    ``(?<!w)a|(?<!w)b`` does, at the same places): a look-behind per alternative made the
    engine test every cue at every position, ~20 µs a task; this is ~8x less. A CJK cue never
    starts where a Latin one does (their first characters differ), so the two groups'
    order does not matter.
    """
    latin = [re.escape(c) for c in cues if c[0].isascii()]
    other = [re.escape(c) for c in cues if not c[0].isascii()]
    parts = ["(?<![a-z0-9])(?:" + "|".join(latin) + ")"] if latin else []
    return re.compile("|".join(parts + other))


#: One compiled search per capability: "does the task text contain any of its cue stems".
_CUE_RE: dict[str, re.Pattern[str]] = {
    cap: _cue_pattern(cues) for cap, cues in CAPABILITY_CUES.items()
}


#: Message cues that are nouns: "read my text messages" names something to read, not a message
#: to send; they ask for a send only when no read verb governs them in their clause.
_OBJECT_NOUNS: dict[str, frozenset[str]] = {
    C.SEND: frozenset(
        {"email", "e-mail", "mail", "message", "messag", "channel", "post", "dm", "nachricht"}
    ),
    # "what's on my calendar", "find the file": things to read, not to write
    C.WRITE: frozenset({"calendar", "event", "meeting", "file", "appoint"}),
}
#: Message cues that address the user ("tell me", "let me know"): an answer, not a send.
_TO_USER = frozenset({"tell", "let", "inform", "remind", "send"})
#: Short cues that are only themselves as whole words.
_WHOLE_WORDS = frozenset({"let", "dm"})
_READ_WORDS_RE = re.compile(
    r"\b(?:find|read|get|check|show|list|search|look|fetch|retrieve|summar\w*|open|see|"
    r"review|view|what|which|any|how many|count)\b"
)
_CLAUSE_RE = re.compile(r"[.;!?\n]|, | and | then | also ")
_GOVERNED: dict[tuple[str, str], bool] = {}


def _asks_governed(capability: str, task_low: str) -> bool:
    """Whether the task asks for actions of a capability whose cues include object nouns: a
    verb cue (for messages, not one addressed to the user: "tell me"), or an object noun that
    no read verb governs in its clause (cached per task)."""
    hit = _GOVERNED.get((capability, task_low))
    if hit is not None:
        return hit
    hit = False
    nouns = _OBJECT_NOUNS[capability]
    for m in _CUE_RE[capability].finditer(task_low):
        cue = m.group(0).lstrip()
        if cue in _WHOLE_WORDS and _word_rest(task_low, m):
            continue  # "letter", "dmitri"
        if (
            capability == C.SEND
            and cue in _TO_USER
            and task_low.startswith(" me", m.end() + _word_rest(task_low, m))
        ):
            continue
        if cue in nouns:
            a = m.start()
            starts = [c.end() for c in _CLAUSE_RE.finditer(task_low, 0, a)]
            if _READ_WORDS_RE.search(task_low, starts[-1] if starts else 0, a):
                continue
        hit = True
        break
    if len(_GOVERNED) >= 4096:
        _GOVERNED.clear()
    _GOVERNED[(capability, task_low)] = hit
    return hit


def _word_rest(text: str, m: re.Match[str]) -> int:
    """How many word characters follow the match (the rest of the cue's word)."""
    n = 0
    j = m.end()
    while j + n < len(text) and text[j + n].isalnum():
        n += 1
    return n


def asks_for(capability: str, task_low: str) -> bool:
    """Whether the (lower-cased) task text asks for actions of ``capability`` at all.

    A message noun that is the object of a read does not ask for a send; "tell me" is an
    answer to the user:

    >>> asks_for("message_send", "find my recent text messages from my bank and summarise them")
    False
    >>> asks_for("message_send", "read the email from anna and reply to her")
    True
    >>> asks_for("message_send", "post a message to the #general channel")
    True
    """
    if capability in _OBJECT_NOUNS:
        return _asks_governed(capability, task_low)
    rx = _CUE_RE.get(capability)
    return rx is not None and rx.search(task_low) is not None


_SENSITIVE: dict[frozenset[str], tuple[str, ...]] = {}


def _sensitive(caps: frozenset[str]) -> tuple[str, ...]:
    """The sensitive capabilities among ``caps``, most sensitive first (cached per set)."""
    found = _SENSITIVE.get(caps)
    if found is None:
        found = tuple(
            sorted((c for c in caps if c in SENSITIVITY), key=lambda c: (-SENSITIVITY[c], c))
        )
        if len(_SENSITIVE) < 4096:
            _SENSITIVE[caps] = found
    return found


def _stem(w: str) -> str:
    return w[:5] if len(w) > 5 else w


#: what a task text yields: (lower-cased text, word stems, values named, capability -> whether
#: the task asks for it)
_Task = tuple[str, tuple[str, ...], tuple[str, ...], dict[str, bool]]


class TaskRelevance:
    """Scores sensitive actions by their distance from the declared task."""

    def __init__(
        self,
        name: str = "AW-TASK-001",
        min_score: float = 0.15,
        mode: str = "enforce",
        tags: tuple[str, ...] = ("ASI01", "ASI10"),
    ) -> None:
        self.name = name
        self._slot = slot_of(name)
        self.min_score = min_score
        self.mode = mode
        self.tags = tags
        self._tool_stems: dict[str, frozenset[str]] = {}
        #: task text -> what it yields (lower-cased text, word stems, values, capabilities it
        #: asks for): a pure function of the text, so the session keeps only the text (shared
        #: with its scope) and a bounded cache keeps this; memory only. Compact, since it is
        #: full at a worker's scale (2.2 KB a task as a dict of sets, ~9 MB): a tuple, the
        #: lower-cased text shared with the other detectors (``intern.lowered``), the stems
        #: as a tuple of shared strings, the values as a tuple.
        self._tasks: OrderedDict[str, _Task] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tasks"] = OrderedDict()
        return state

    def _task(self, session: SessionState) -> _Task | None:
        # The session's state is the root's task as first seen (later scope changes do not
        # move it); everything derived from it comes from the cache.
        det, slot = session.det, self._slot
        task: str | None = state_at(det, slot) if slot < states_len(det) else None
        if task is None:
            task = session.scope_of(session.root_id).task
            if not task:
                return None
            session.det[self.name] = task
        st = self._tasks.get(task)
        if st is None:
            low = lowered(task)
            stems = sorted({_stem(w) for w in _WORD_RE.findall(low)})
            st = (
                low,
                tuple(canonical(w) for w in stems),
                tuple(sorted(values.extract(task))),
                {},
            )
            self._tasks[task] = st
            if len(self._tasks) > TASK_CACHE:
                self._tasks.popitem(last=False)
        return st

    def _stems(self, tool: str) -> frozenset[str]:
        s = self._tool_stems.get(tool)
        if s is None:
            s = frozenset(_stem(w) for w in tokens(tool) if w not in _STOP and len(w) > 2)
            if len(self._tool_stems) < 10_000:
                self._tool_stems[tool] = s
        return s

    def score_step(
        self, ctx: EventContext, session: SessionState
    ) -> tuple[float, dict[str, Any]] | None:
        """The step's off-task score and its reasons (None if not a sensitive action)."""
        tool = ctx.event.tool
        if tool is None:
            return None
        caps = _sensitive(ctx.caps)
        if not caps:
            return None
        st = self._task(session)
        if st is None:
            return None
        cap = caps[0]
        low, stems, task_values, asked = st
        off_cap = True
        for c in caps:
            hit = asked.get(c)
            if hit is None:
                hit = asked[c] = asks_for(c, low)
            if hit:
                off_cap = False
                break
        off_tool = self._stems(tool.name).isdisjoint(stems)
        new = sorted(
            v
            for v, (_, kind) in ctx.argument_values().items()
            if kind not in _NOT_DESTINATIONS and v not in task_values and v not in low
        )
        parts = (0.6 if off_cap else 0.0, 0.2 if off_tool else 0.0, 0.4 if new else 0.0)
        keep = 1.0
        for p in parts:
            keep *= 1.0 - p
        score = round(SENSITIVITY[cap] * (1.0 - keep), 4)
        why = {
            "capability": cap,
            "off_capability": off_cap,
            "off_tool": off_tool,
            "new_destinations": new[:8],
        }
        return score, why

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        r = self.score_step(ctx, session)
        if r is None or r[0] < self.min_score or adds_nothing(session, self.name, r[0], "observe"):
            return []
        score, why = r
        assert ctx.event.tool is not None
        reasons = []
        if why["off_capability"]:
            reasons.append(f"the task asks for no {why['capability'].replace('_', ' ')}")
        if why["off_tool"]:
            reasons.append("the tool is not named in the task")
        if why["new_destinations"]:
            reasons.append("new destination " + ", ".join(why["new_destinations"][:3]))
        return [
            Finding(
                detector=self.name,
                title="Action outside the declared task",
                message=(
                    f"{ctx.event.tool.name} (seq {ctx.seq}) in session {session.root_id} drifts "
                    f"from the task: {'; '.join(reasons)}; score {score:.2f}."
                ),
                score=score,
                severity="low",
                action="observe",
                mode=mode_of(self.mode),
                evidence=(ctx.event.event_id,),
                tags=self.tags,
                key=self.name,
                explanation={"tool": ctx.event.tool.name, "seq": ctx.seq, **why},
            )
        ]
