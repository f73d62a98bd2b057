"""Name-based identifiers: the same text as ``uuid.uuid5``, for any namespace and name."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.ids import uuid5_text


@given(st.uuids(), st.text())
def test_same_as_uuid5(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))
