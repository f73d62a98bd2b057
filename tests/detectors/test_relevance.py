"""Task relevance: which kinds of action a task asks for."""

from __future__ import annotations

import random
import re

import pytest

from detectors import capabilities as C
from detectors.relevance import _CUE_RE, CAPABILITY_CUES, asks_for

SENDS = [
    "send the report to anna",
    "reply to the email from my landlord",
    "email bob the slides",
    "post a message to the #general channel",
    "read the email from anna and forward it to tom",
]
READS = [
    "can you find my recent text messages from my bank and summarise them?",
    "read my latest email about the project",
    "what's in the last message on the #random channel?",
    "find my latest email from the news letter and tell me the headlines",
    "list the tasks in my todo app",
]


@pytest.mark.parametrize("task", SENDS)
def test_a_task_asking_for_a_message_asks_for_a_send(task: str) -> None:
    assert asks_for(C.SEND, task)


@pytest.mark.parametrize("task", READS)
def test_messages_to_read_and_answers_to_the_user_are_not_sends(task: str) -> None:
    assert not asks_for(C.SEND, task)


def test_cues_are_word_prefixes_and_things_to_read_are_not_writes() -> None:
    assert not asks_for(C.CODE_EXEC, "read my latest email")  # "latest" is not a "test"
    assert asks_for(C.CODE_EXEC, "run the tests of my project")
    assert not asks_for(C.WRITE, "what's on my calendar for the doctor's appointment?")
    assert asks_for(C.WRITE, "add a dentist appointment to my calendar")


def test_cue_searches_match_where_a_word_start_check_before_the_cue_would() -> None:
    """The cue searches put the word-start check after a cue's first character (for speed);
    they find the same matches, at the same places, as the check before the cue."""
    rnd = random.Random(5)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ,.-_#@/\n'é数据发送"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(3000)]
    for cues in CAPABILITY_CUES.values():
        texts += [f"{rnd.choice(['', 'x', ' ', '1'])}{c}{rnd.choice(['', 's', ' '])}" for c in cues]
    for cap, cues in CAPABILITY_CUES.items():
        before = re.compile(
            "|".join(("(?<![a-z0-9])" if c[0].isascii() else "") + re.escape(c) for c in cues)
        )
        for t in texts:
            want = [(m.start(), m.group(0)) for m in before.finditer(t)]
            assert [(m.start(), m.group(0)) for m in _CUE_RE[cap].finditer(t)] == want, (cap, t)
    assert any(_CUE_RE[cap].search(t) for cap in _CUE_RE for t in texts)


def test_the_shared_look_behind_finds_what_one_per_cue_found() -> None:
    """The cue searches match the same cues at the same places as one look-behind per cue."""
    import re

    from detectors.relevance import _CUE_RE, CAPABILITY_CUES

    texts = [
        "pay the invoice, then e-mail the receipt to anna@acme.com and post a message",
        "latest test: delete the old files; 请支付账单 and 发送消息 to bob",
        "find my messages and summarise; reset the password, run the script, fetch the page",
        "nothing relevant here at all",
    ]
    texts.append(" ".join(c for cues in CAPABILITY_CUES.values() for c in cues))
    texts.append("x".join(c for cues in CAPABILITY_CUES.values() for c in cues))
    for cap, cues in CAPABILITY_CUES.items():
        one_each = re.compile(
            "|".join(("(?<![a-z0-9])" if c[0].isascii() else "") + re.escape(c) for c in cues)
        )
        for text in texts:
            want = [(m.span(), m.group(0)) for m in one_each.finditer(text)]
            assert [(m.span(), m.group(0)) for m in _CUE_RE[cap].finditer(text)] == want
