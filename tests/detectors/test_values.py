"""Steering values in arguments: identifiers of id-like arguments."""

from __future__ import annotations

from detectors.values import REF, argument_values, id_key, is_ref


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
