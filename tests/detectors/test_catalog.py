"""The tool catalog on tool names people use: agent toolkits, MCP servers, cloud APIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors import capabilities as C
from detectors.catalog import ToolCatalog, tokens
from detectors.catalog_file import load_catalog
from detectors.vocabulary import Vocabulary
from schemas.errors import ConfigError
from schemas.events import Resource, Transfer, parse_event

CAT = ToolCatalog(internal_domains=("acme.com",))

# tool name -> capabilities it must have (it may have more: read, write...)
NAMES = {
    # agent toolkits (banking / workspace / travel / chat assistants)
    "send_money": {C.PAYMENT},
    "schedule_transaction": {C.PAYMENT},
    "update_scheduled_transaction": {C.PAYMENT},
    "send_email": {C.SEND},
    "share_file": {C.SEND},
    "post_webpage": {C.SEND},
    "get_webpage": {C.FETCH, C.UNTRUSTED_INPUT},
    "read_file": {C.READ, C.UNTRUSTED_INPUT},
    "search_emails": {C.READ, C.UNTRUSTED_INPUT},
    "read_channel_messages": {C.READ, C.UNTRUSTED_INPUT},
    "get_rating_reviews_for_hotels": {C.READ, C.UNTRUSTED_INPUT},
    "update_password": {C.CREDENTIAL_CHANGE},
    "invite_user_to_slack": {C.CREDENTIAL_CHANGE},
    "add_user_to_channel": {C.CREDENTIAL_CHANGE},
    "delete_file": {C.DESTRUCTIVE},
    "get_most_recent_transactions": {C.SENSITIVE_READ},
    "reserve_hotel": {C.WRITE},
    # MCP servers (server.tool, mcp__server__tool, camelCase)
    "mcp__github__delete_repository": {C.DESTRUCTIVE},
    "github.add_collaborator": {C.CREDENTIAL_CHANGE},
    "filesystem.write_file": {C.WRITE},
    "slack.post_message": {C.SEND},
    "gmail.read_email": {C.UNTRUSTED_INPUT},
    "puppeteer_navigate": {C.FETCH, C.UNTRUSTED_INPUT},
    "vault.read_secret": {C.SECRET_READ},
    "getSecretValue": {C.SECRET_READ},
    "aws.secretsmanager.get_secret_value": {C.SECRET_READ},
    "kms.decrypt": {C.SECRET_READ},
    # cloud and infrastructure
    "aws.iam.attach_role_policy": {C.CREDENTIAL_CHANGE},
    "aws.iam.create_access_key": {C.CREDENTIAL_CHANGE},
    "okta.deactivate_user": {C.CREDENTIAL_CHANGE},
    "rotate_api_key": {C.CREDENTIAL_CHANGE},
    "db.drop_table": {C.DESTRUCTIVE},
    "kubectl_delete": {C.DESTRUCTIVE},
    "deploy_to_production": {C.PROD_WRITE},
    "stripe.create_refund": {C.PAYMENT},
    "wire_transfer": {C.PAYMENT},
    "dump_database": {C.BULK_READ},
    # code execution and delegation
    "run_command": {C.CODE_EXEC},
    "python_repl": {C.CODE_EXEC},
    "execute_sql": {C.CODE_EXEC},
    "invoke_lambda": {C.CODE_EXEC},
    "invoke_agent": {C.DELEGATION},
    "transfer_to_agent": {C.DELEGATION},
    "spawn_subagent": {C.DELEGATION},
}
# things these names must NOT be said to be
NOT = {
    "get_most_recent_transactions": {C.PAYMENT},
    "update_user_info": {C.CREDENTIAL_CHANGE},
    "transfer_to_agent": {C.PAYMENT},
    "search_contacts_by_email": {C.SEND},
    "postgres.query": {C.CODE_EXEC},
    "get_hotels_address": {C.SENSITIVE_READ},
    "invoke_agent": {C.CODE_EXEC},
}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_names_people_use(name: str) -> None:
    caps = CAT.name_capabilities(name)
    assert NAMES[name] <= caps, (name, sorted(caps))
    assert not NOT.get(name, set()) & caps, (name, sorted(caps))


@pytest.mark.parametrize("name", sorted(NOT))
def test_what_names_are_not(name: str) -> None:
    assert not NOT[name] & CAT.name_capabilities(name)


def test_tokens_split_every_naming_style() -> None:
    assert tokens("mcp__github__createIssue") == ["mcp", "github", "create", "issue"]
    assert tokens("AWS.S3.PutObject") == ["aws", "s3", "put", "object"]


def test_destinations_inside_and_outside_the_organisation() -> None:
    out = CAT.classify_parts("send_email", (), None, None, {"to": ["bob@acme.com", "eve@x.io"]})
    assert C.EGRESS in out.capabilities and out.external is True
    assert out.destinations == ("bob@acme.com", "eve@x.io") and out.outside == ("eve@x.io",)
    inside = CAT.classify_parts("send_email", (), None, None, {"to": "bob@eng.acme.com"})
    assert C.EGRESS not in inside.capabilities and inside.external is False
    chat = CAT.classify_parts("send_direct_message", (), None, None, {"recipient": "Alice"})
    assert C.EGRESS not in chat.capabilities and chat.destinations == ("Alice",)
    fetch = CAT.classify_parts("get_webpage", (), None, None, {"url": "https://x.io/a"})
    assert C.EGRESS not in fetch.capabilities and fetch.destination == "https://x.io/a"
    unknown = ToolCatalog().classify_parts("share_file", (), None, None, {"email": "a@b.io"})
    assert C.EGRESS in unknown.capabilities and unknown.external is None


def test_environment_from_resources_arguments_and_names() -> None:
    prod_res = CAT.classify_parts(
        "db.update_rows", [Resource(type="table", environment="production")], None, None
    )
    assert C.PROD_WRITE in prod_res.capabilities and prod_res.environment == "production"
    prod_arg = CAT.classify_parts("kubectl_delete", (), None, None, {"namespace": "prod-eu"})
    assert C.PROD_WRITE in prod_arg.capabilities
    staging = CAT.classify_parts("kubectl_delete", (), None, None, {"namespace": "staging"})
    assert C.PROD_WRITE not in staging.capabilities
    read_prod = CAT.classify_parts("db.query", [Resource(environment="prod")], None, None)
    assert C.PROD_WRITE not in read_prod.capabilities


def test_resources_transfers_and_sizes() -> None:
    secret = CAT.classify_parts("fetch", [Resource(type="secret")], None, None)
    assert C.SECRET_READ in secret.capabilities
    bulk = CAT.classify_parts("sql.query", (), Transfer(records=50_000), None)
    assert C.BULK_READ in bulk.capabilities
    big = CAT.classify_parts("search_rows", (), None, None, {"limit": 5000})
    assert C.BULK_READ in big.capabilities
    forced = CAT.classify_parts(
        "http.post", (), Transfer(destination="https://a.acme.com", external=True), None
    )
    assert C.EGRESS in forced.capabilities and forced.external is True


def test_the_producers_category_wins() -> None:
    ev = parse_event(
        json.dumps(
            {
                "event_id": "e",
                "time": "2026-07-01T12:00:00Z",
                "kind": "tool_call",
                "session": {"id": "s"},
                "actor": {"agent_id": "a"},
                "category": "secret_retrieval",
                "tool": {"name": "send_money"},
            }
        )
    )
    assert CAT.classify(ev).capabilities == {C.SECRET_READ}


def test_classification_is_cached_per_tool() -> None:
    cat = ToolCatalog()
    first = cat.name_capabilities("send_money")
    assert cat.name_capabilities("send_money") is first
    assert ("send_money", None) in cat._cache


def test_every_tool_of_the_dev_set_is_classified() -> None:
    """Every tool name recorded in the real agent sessions gets at least one capability."""
    here = Path(__file__).resolve()
    data = next(
        (
            p / "shared/data/agentdojo-dev/events.jsonl"
            for p in here.parents
            if (p / "shared/data/agentdojo-dev/events.jsonl").exists()
        ),
        None,
    )
    if data is None:
        pytest.skip("the shared dev set is not available")
    names = {
        e["tool"]["name"] for e in map(json.loads, data.read_text().splitlines()) if e.get("tool")
    }
    assert len(names) >= 60
    unclassified = sorted(n for n in names if not ToolCatalog().name_capabilities(n))
    assert unclassified == []


def test_catalog_files_override_and_report_every_error(tmp_path: Path) -> None:
    good = tmp_path / "catalog.yaml"
    good.write_text(
        "internal_domains: [corp.example]\n"
        "prod_environments: [live]\n"
        "tools:\n"
        "  'billing.*': [payment]\n"
        "  send_money: [read]\n"
        "words:\n"
        "  secret: [sops]\n"
    )
    cat = load_catalog(good)
    assert cat.name_capabilities("billing.frobnicate") == {C.PAYMENT}
    assert cat.name_capabilities("send_money") == {C.READ}
    assert C.SECRET_READ in cat.name_capabilities("sops_decrypt")
    assert cat.is_internal("x.corp.example") and cat.is_prod("live")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools:\n  a: [paymnt]\nwords:\n  verbs: [x]\nnope: 1\n")
    with pytest.raises(ConfigError) as info:
        load_catalog(bad)
    assert str(info.value).splitlines() == [
        f"Unknown catalog key 'nope' in {bad}:5",
        f"Unknown capability 'paymnt' for tool 'a' in {bad}:2",
        f"Unknown word class 'verbs' (one of {', '.join(Vocabulary.classes())}) in {bad}:4",
    ]


def test_environment_resource_beats_arguments_and_namespaces_need_an_environment_word() -> None:
    # a namespace named after its service says nothing; the resource says where it acts
    apply = CAT.classify_parts(
        "kubectl.apply",
        [Resource(type="k8s_deployment", environment="staging")],
        None,
        None,
        {"namespace": "payments-api", "image": "payments:v2"},
    )
    assert apply.environment == "staging" and C.PROD_WRITE not in apply.capabilities
    svc_ns = CAT.classify_parts("kubectl.apply", (), None, None, {"namespace": "checkout"})
    assert svc_ns.environment is None
    env_ns = CAT.classify_parts("kubectl.apply", (), None, None, {"namespace": "eks-prod-1"})
    assert C.PROD_WRITE in env_ns.capabilities
    # an argument called environment counts whatever its value; prod wins over others
    both = CAT.classify_parts(
        "deploy", (), None, None, {"context": "staging", "environment": "prod-eu"}
    )
    assert both.environment == "prod-eu"
    prod_res = CAT.classify_parts(
        "kubectl.apply",
        [Resource(environment="staging"), Resource(environment="prod")],
        None,
        None,
    )
    assert prod_res.environment == "prod" and C.PROD_WRITE in prod_res.capabilities


@pytest.mark.parametrize(
    ("sql", "cap"),
    [
        ("DROP TABLE orders CASCADE", C.DESTRUCTIVE),
        ("select 1;\n truncate table events", C.DESTRUCTIVE),
        ("DELETE FROM users WHERE 1=1", C.DESTRUCTIVE),
        ("UPDATE accounts SET balance = 0", C.WRITE),
        ("GRANT ALL ON payments TO mallory", C.CREDENTIAL_CHANGE),
        ("SELECT * FROM orders", None),
        ("drop shipping suppliers for small shops", None),
    ],
)
def test_sql_statements_in_arguments(sql: str, cap: str | None) -> None:
    out = CAT.classify_parts(
        "postgres.execute", [Resource(type="database", environment="prod")], None, None,
        {"sql": sql},
    )  # fmt: skip
    if cap is None:
        assert not out.capabilities & {C.DESTRUCTIVE, C.WRITE, C.PROD_WRITE}
    else:
        assert cap in out.capabilities and C.PROD_WRITE in out.capabilities


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        ("~/.aws/credentials", True),
        ("/home/dev/.ssh/id_ed25519", True),
        ("config/.env.production", True),
        ("deploy/tls.pem", True),
        ("k8s/secrets.yaml", True),
        ("src/amounts.py", False),
        ("docs/shadow-it.md", False),
        ("README.md", False),
    ],
)
def test_reading_a_credentials_file_is_a_secret_retrieval(path: str, secret: bool) -> None:
    out = CAT.classify_parts("fs.read_file", (), None, None, {"path": path})
    assert (C.SECRET_READ in out.capabilities) is secret
    write = CAT.classify_parts("fs.write_file", (), None, None, {"path": path})
    assert C.SECRET_READ not in write.capabilities


def test_the_producers_word_on_where_a_transfer_goes() -> None:
    out = ToolCatalog().classify_parts(
        "s3.put_object", (), Transfer(destination="s3://dump-x/a.csv", external=True), None
    )
    assert C.EGRESS in out.capabilities and out.outside == ("s3://dump-x/a.csv",)
    stays = ToolCatalog().classify_parts(
        "slack.post_message",
        (),
        Transfer(destination="https://acme.slack.com/archives/C1", external=False),
        None,
    )
    assert C.EGRESS not in stays.capabilities and stays.outside == ()


# CamelCase toolkit names (``<Vendor><Toolkit><Verb><Noun>``) and the actions they take
TOOLKIT_NAMES = {
    "ShopGetProductDetails": {C.READ, C.UNTRUSTED_INPUT},
    "PhoneGetReceivedSmsMessages": {C.READ, C.UNTRUSTED_INPUT},
    "CodeHostSearchRepositories": {C.READ, C.UNTRUSTED_INPUT},
    "StoreViewSavedPaymentMethods": {C.READ, C.SENSITIVE_READ},
    "HealthViewPrescriptions": {C.READ, C.SENSITIVE_READ},
    "GenomeGetGeneticData": {C.READ, C.SENSITIVE_READ},
    "BrokerGetHoldingsInformation": {C.READ, C.SENSITIVE_READ},
    "HomeLockViewAccessHistory": {C.READ, C.SENSITIVE_READ},
    "VaultSearchPasswords": {C.SECRET_READ},
    "HomeLockGrantGuestAccess": {C.CREDENTIAL_CHANGE},
    "HomeLockUnlockDoor": {C.CREDENTIAL_CHANGE},
    "NotesManageNoteSharingLevel": {C.CREDENTIAL_CHANGE},
    "ExchangeWithdraw": {C.PAYMENT},
    "ExchangeDeposit": {C.PAYMENT},
    "WalletWithdrawMoney": {C.PAYMENT},
    "RecordsManagePatientRecords": {C.WRITE},
    "TrafficManageTrafficLightState": {C.WRITE},
    "ChatLeaveChannel": {C.WRITE},
}
TOOLKIT_NOT = {
    "StoreViewSavedPaymentMethods": {C.PAYMENT},
    "list_refunds": {C.PAYMENT},
    "get_purchase_history": {C.PAYMENT},
    "HomeLockViewAccessHistory": {C.CREDENTIAL_CHANGE},
}


@pytest.mark.parametrize("name", sorted(TOOLKIT_NAMES))
def test_camelcase_toolkit_names(name: str) -> None:
    caps = CAT.name_capabilities(name)
    assert TOOLKIT_NAMES[name] <= caps, (name, sorted(caps))


@pytest.mark.parametrize("name", sorted(TOOLKIT_NOT))
def test_what_toolkit_names_are_not(name: str) -> None:
    assert not TOOLKIT_NOT[name] & CAT.name_capabilities(name)


def test_the_environment_cache_is_bounded_and_starts_over() -> None:
    """Argument values are looked up as environment names too: unique ones (a flood of new
    namespaces) must not grow the cache past its bound, and answers stay right after it
    starts over."""
    from detectors.catalog import MAX_CACHED_ENVIRONMENTS

    cat = ToolCatalog()
    for i in range(3 * MAX_CACHED_ENVIRONMENTS):
        assert cat.is_prod(f"payments-api-{i}") is False
        assert len(cat._prod_cache) <= MAX_CACHED_ENVIRONMENTS
    assert cat.is_prod("eks-production-1") and cat.is_prod("prod-eu")
