"""Steering values in arguments: identifiers of id-like arguments."""

from __future__ import annotations

import random
import re

from detectors.values import _NUMERIC_RE, REF, argument_values, id_key, is_ref


def test_identifier_shaped_values_of_id_arguments_are_refs() -> None:
    args = {
        "guest_ids": ["Guest_K12"],
        "payee_id": "P-009911",
        "to_account_number": "310-2211-9087",
        "patient_id": 558812,
        "amount": 500,
        "date": "2022-02-22",
        "note": "call me back",
    }
    found = argument_values(args)
    assert found == {
        "guest_k12": ("guest_ids", REF),
        "p-009911": ("payee_id", REF),
        "310-2211-9087": ("to_account_number", REF),
        "558812": ("patient_id", REF),
    }


def test_words_dates_and_short_numbers_are_not_refs() -> None:
    assert not any(is_ref(v) for v in ("mars", "2022-02-22", "12:30", "001", "1234", "a b1"))
    assert all(is_ref(v) for v in ("smartspeaker9", "id001", "aw-1234", "12345"))


def test_id_arguments_are_named_by_their_suffix() -> None:
    assert all(id_key(k) for k in ("id", "appid", "room_ids", "account", "card_number", "payee"))
    assert not any(id_key(k) for k in ("amount", "subject", "body", "ideal", "validation"))


def test_numeric_values_are_found_where_the_check_before_the_first_character_finds_them() -> None:
    """``_NUMERIC_RE`` checks the character before a value one character later (for speed):
    the same matches, of the same kind, as the check before it."""
    before = re.compile(
        r"(?<![\w+])(?:([A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30})|(\+\d[\d ().-]{6,18}\d)|(\d{9,19}))"
        r"(?![\w.-])"
    )
    rnd = random.Random(9)
    alphabet = "DE89 0123456789+().-_ABZaz\n,.٣٤٥"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(5000)]
    texts += ["IBAN DE89 3704 0044 0532 0130 00, +1 (555) 010-9999, acct 123456789012"]
    for _ in range(2000):  # values of each kind, at and around their length limits
        digits = "".join(rnd.choice("0123456789 -") for _ in range(rnd.randint(6, 22)))
        head = rnd.choice(["", " ", "+", "x", "GB29", "DE8", "+1 ", ".", "A"])
        texts.append(
            f"{rnd.choice(['', 'a', ' ', '+'])}{head}{digits}{rnd.choice(['', '.', 'x', ' '])}"
        )
    found = 0
    for t in texts:
        want = [(m.start(), m.end(), m.lastindex) for m in before.finditer(t)]
        assert [(m.start(), m.end(), m.lastindex) for m in _NUMERIC_RE.finditer(t)] == want, t
        found += len(want)
    assert found > 100
