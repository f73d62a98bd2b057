"""Redaction: secret-shaped values and configured fields are masked, with stable
fingerprints; ordinary text, identifiers and paths are left alone; sizes are bounded."""

from __future__ import annotations

import re

import pytest

from monitor.redaction import Redactor, entropy, load_key

FIELDS = ["password", "secret", "token", "api_key", "authorization", "cookie"]


@pytest.fixture
def r() -> Redactor:
    return Redactor(b"k" * 32, FIELDS, max_output_chars=200, max_string_chars=120)


SECRETS = [
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFU"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("github_token", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_key", "sk-proj-abcDEF1234567890ghijKLMN"),
    ("google_api_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("token", "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI"),
]


@pytest.mark.parametrize(("kind", "secret"), SECRETS)
def test_secret_shapes_are_masked_in_text(r: Redactor, kind: str, secret: str) -> None:
    out = r.text(f"config: {secret} (do not share)")
    assert secret not in out
    assert f"[REDACTED:{kind}#{r.fingerprint(secret)}]" in out
    assert out.startswith("config: ") and out.endswith(" (do not share)")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdefghijklmnop.qrstuv", "abcdefghijklmnop.qrstuv"),
        ("postgres://app:S3cr3tP4ss@db.prod:5432/payments", "S3cr3tP4ss"),
        ("DB_PASSWORD=hunter2hunter2\nOTHER=1", "hunter2hunter2"),
        ('{"client_secret": "abcd1234efgh", "user": "bob"}', "abcd1234efgh"),
        ("Server=db;User Id=sa;Password=Xy9!long;", "Xy9!long"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAK\nabc\n-----END RSA PRIVATE KEY-----",
            "MIIEpAIBAAK",
        ),
    ],
)
def test_secrets_in_context_are_masked(r: Redactor, text: str, secret: str) -> None:
    out = r.text(text)
    assert secret not in out
    assert "[REDACTED:" in out


@pytest.mark.parametrize(
    "text",
    [
        "event 0190a7c2-5b1e-7c3e-9d2a-5b1f3c7e8a90 in session sess-u40ugzecuyzup9",
        "commit 3f9a1c2b7d4e5f60718293a4b5c6d7e8f9012345",
        "s3://acme-data/reports/2026/Q3/financial_summary_v2.parquet",
        "Please summarise the Q3 revenue report and send it to finance@acme.com by Friday.",
        "https://github.com/acme/payments-api/pull/1234",
        "IBAN DE89370400440532013000, amount 1200.50 EUR",
    ],
)
def test_ordinary_values_are_kept(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def test_fingerprints_correlate_without_revealing(r: Redactor) -> None:
    a = r.text("key AKIAIOSFODNN7EXAMPLE")
    b = r.text("again: AKIAIOSFODNN7EXAMPLE!")
    fp = re.findall(r"#([0-9a-f]{12})\]", a)
    assert fp and fp == re.findall(r"#([0-9a-f]{12})\]", b)
    other = Redactor(b"z" * 32, FIELDS)
    assert other.fingerprint("AKIAIOSFODNN7EXAMPLE") != r.fingerprint("AKIAIOSFODNN7EXAMPLE")


def test_configured_fields_are_masked_at_any_depth(r: Redactor) -> None:
    doc = {
        "user": "bob",
        "db_password": "x",
        "headers": {"X-Api-Key": "123", "Accept": "json"},
        "accessToken": 42,
        "items": [{"secret": "s"}],
        "max_tokens": 512,
        "ok": True,
    }
    out = r.value(doc)
    assert out["user"] == "bob" and out["headers"]["Accept"] == "json"
    assert out["max_tokens"] == 512 and out["ok"] is True
    for masked in (
        out["db_password"],
        out["headers"]["X-Api-Key"],
        out["accessToken"],
        out["items"][0]["secret"],
    ):
        assert str(masked).startswith("[REDACTED:field#")


def test_event_doc_keeps_identifiers_and_bounds_output(r: Redactor) -> None:
    doc = {
        "event_id": "e-aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI",
        "session": {"id": "s1", "root_id": "s1"},
        "kind": "tool_call",
        "tool": {
            "name": "vault.read_secret",
            "arguments": {"path": "kv/prod/db", "token": "t0k3n-value"},
            "output": "x" * 1000,
        },
    }
    out = r.event_doc(doc)
    assert out["event_id"] == doc["event_id"] and out["session"] == doc["session"]
    assert out["tool"]["arguments"]["path"] == "kv/prod/db"
    assert "t0k3n-value" not in str(out)
    assert out["tool"]["output"].startswith("x" * 200)
    assert "truncated 800 chars" in out["tool"]["output"]


def test_a_secret_across_the_cut_is_not_half_kept(r: Redactor) -> None:
    secret = "ghp_" + "Ab1" * 12
    text = "a" * 100 + " " + secret + " tail"
    out = r.text(text, 110)
    assert secret[:9] not in out
    assert "truncated" in out


def test_masking_is_idempotent(r: Redactor) -> None:
    once = r.text("password=hunter2hunter2 and Bearer abcdefghijklmnopq")
    assert r.text(once) == once


def test_entropy() -> None:
    assert entropy("aaaa") == 0
    assert entropy("abcd") == 2


def test_key_file_is_created_private_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    k1 = load_key(None, tmp_path)
    assert (tmp_path / "redaction.key").stat().st_mode & 0o777 == 0o600
    assert load_key(None, tmp_path) == k1
    short = tmp_path / "short.key"
    short.write_text("abc")
    with pytest.raises(ValueError, match="shorter than 16 bytes"):
        load_key(short, tmp_path)


def test_members_outside_the_contract_are_scanned(r: Redactor) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
    doc = {
        "event_id": "e1",
        "actor": {"agent_id": "a", "credential": {"jti": "j1", "token": jwt}, "note": jwt},
        "tool": {"name": "http.get", "headers": {"Authorization": "Bearer abcdefghijklmnopqr"}},
        "session": {"id": "s1", "debug": "password=hunter2hunter2"},
        "resources": [{"type": "db", "uid": "postgres://u:S3cr3tP4ss@db/x", "dsn_pw": "x"}],
        "x_extension": {"aws": "AKIAIOSFODNN7EXAMPLE"},
    }
    out = r.event_doc(doc)
    text = str(out)
    for secret in (
        jwt,
        "abcdefghijklmnopqr",
        "hunter2hunter2",
        "S3cr3tP4ss",
        "AKIAIOSFODNN7EXAMPLE",
    ):
        assert secret not in text
    assert out["actor"]["credential"]["jti"] == "j1" and out["session"]["id"] == "s1"
    assert out["resources"][0]["type"] == "db"
