"""The ClickHouse tables agentwatch writes, laid out for replaying one root session fast.

* ``events`` — one row per action event. ``ReplacingMergeTree(stored_at)`` ordered by
  ``(tenant, root_session_id, time, event_id)``: the rows of one delegation tree are
  contiguous and in time order, so a replay reads a few granules; an event delivered twice
  (same ``event_id``, same time) collapses to one row. Typed columns for what investigators
  filter on (kind, tool, capabilities, environment, destination, agent, workload, credential
  jti, seq, the Kafka partition/offset it came from) and the **redacted** event JSON.
* ``alerts`` — one row per alert *version* (OCSF Detection Finding), ``ReplacingMergeTree
  (modified_time)`` keyed by ``finding_info.uid``: the latest version wins.
* ``kill_signals`` — the signed SETs published on the revocation topic, one per ``jti``.
* ``privileged_actions`` — the privileged-action audit log (``schemas/privileged.py``: who
  retrieved a secret, wrote to production, exported, paid, changed a credential, under which
  task and scope, on whose behalf), one row per record ``uid``, ``ReplacingMergeTree
  (stored_at)`` ordered by ``(tenant, root_session_id, time, uid)``; the same records go to
  ``agent.privileged``. Ordinary events are not in it.
* ``sessions`` — a lookup table filled by a materialized view from ``events``: each root
  session's time range, agents, event count (``uniqExact`` of event ids, so duplicates do not
  inflate it), task and end. Replay reads it first and then only the parts of ``events`` in
  that time range (``PARTITION BY toDate(time)`` prunes the rest).

How users read, so that every event appears exactly once (``EXACTLY_ONCE_READ``): ``FINAL``
collapses re-deliveries that ClickHouse has not merged yet, and ``LIMIT 1 BY event_id``
makes the result exact on ``event_id`` even for a duplicate that a producer re-sent with a
different time (it would sort elsewhere and survive ``FINAL``). Alerts read latest-wins with
``FINAL`` (or ``argMax(..., modified_time)`` by ``alert_uid``).

Inserts carry an ``insert_deduplication_token`` (one per batch and table, kept across
retries and in the disk spool), and the tables keep a deduplication window, so a batch
retried after a lost acknowledgement is not inserted twice.
"""

from __future__ import annotations

from typing import Final

#: Columns of each table, in insert order (the row builders in ``rows.py`` follow them).
EVENT_COLUMNS: Final = (
    "tenant",
    "root_session_id",
    "time",
    "event_id",
    "session_id",
    "parent_session_id",
    "seq",
    "kind",
    "agent_id",
    "agent_version",
    "workload_id",
    "on_behalf_of",
    "credential_iss",
    "credential_jti",
    "tool_name",
    "tool_server",
    "tool_call_id",
    "outcome",
    "capabilities",
    "environment",
    "destination",
    "destination_host",
    "external",
    "bytes",
    "records",
    "task",
    "trace_id",
    "source_partition",
    "source_offset",
    "stored_at",
    "event_json",
)

ALERT_COLUMNS: Final = (
    "tenant",
    "root_session_id",
    "alert_uid",
    "created_time",
    "modified_time",
    "activity_id",
    "rule_uid",
    "rule_name",
    "title",
    "severity_id",
    "risk_score",
    "session_risk",
    "response",
    "mode",
    "kill_signal_jti",
    "session_id",
    "agent_id",
    "workload_id",
    "trigger_event_id",
    "trigger_seq",
    "evidence_event_ids",
    "tags",
    "attacks",
    "message",
    "stored_at",
    "finding_json",
)

SIGNAL_COLUMNS: Final = (
    "tenant",
    "root_session_id",
    "jti",
    "iat",
    "txn",
    "session_id",
    "agent_uri",
    "token_jti",
    "audience",
    "reason",
    "stored_at",
    "claims_json",
    "compact_jws",
)

#: ``PrivilegedAction.row()`` members, in the table's order, then ``stored_at``.
PRIVILEGED_COLUMNS: Final = (
    "tenant",
    "root_session_id",
    "time",
    "uid",
    "event_id",
    "session_id",
    "parent_session_id",
    "seq",
    "kind",
    "tool_name",
    "tool_server",
    "tool_call_id",
    "outcome",
    "argument_names",
    "capabilities",
    "all_capabilities",
    "destinations",
    "external",
    "environment",
    "resources",
    "agent_id",
    "agent_version",
    "workload_id",
    "on_behalf_of",
    "act_chain",
    "credential",
    "scope",
    "in_scope",
    "delegation",
    "risk",
    "killed",
    "schema_version",
    "stored_at",
)

#: Columns holding times (converted back from the disk spool's JSON).
DATETIME_COLUMNS: Final = {
    "events": frozenset({"time", "stored_at"}),
    "alerts": frozenset({"created_time", "modified_time", "stored_at"}),
    "kill_signals": frozenset({"iat", "stored_at"}),
    "privileged_actions": frozenset({"time", "stored_at"}),
}
COLUMNS: Final = {
    "events": EVENT_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "kill_signals": SIGNAL_COLUMNS,
    "privileged_actions": PRIVILEGED_COLUMNS,
}

_DDL = (
    "CREATE DATABASE IF NOT EXISTS {db}",
    """
CREATE TABLE IF NOT EXISTS {db}.events
(
    tenant            LowCardinality(String),
    root_session_id   String,
    time              DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id          String,
    session_id        String,
    parent_session_id String,
    seq               Nullable(UInt64),
    kind              LowCardinality(String),
    agent_id          LowCardinality(String),
    agent_version     LowCardinality(String),
    workload_id       LowCardinality(String),
    on_behalf_of      String CODEC(ZSTD(1)),
    credential_iss    LowCardinality(String),
    credential_jti    String,
    tool_name         LowCardinality(String),
    tool_server       LowCardinality(String),
    tool_call_id      String CODEC(ZSTD(1)),
    outcome           LowCardinality(String),
    capabilities      Array(LowCardinality(String)),
    environment       LowCardinality(String),
    destination       String CODEC(ZSTD(1)),
    destination_host  LowCardinality(String),
    external          Nullable(Bool),
    bytes             UInt64,
    records           UInt64,
    task              String CODEC(ZSTD(3)),
    trace_id          String CODEC(ZSTD(1)),
    source_partition  Int32,
    source_offset     Int64,
    stored_at         DateTime64(3, 'UTC'),
    event_json        String CODEC(ZSTD(3)),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session session_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_jti credential_jti TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_caps capabilities TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_dest destination_host TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toDate(time)
ORDER BY (tenant, root_session_id, time, event_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000
""",
    """
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    tenant             LowCardinality(String),
    root_session_id    String,
    alert_uid          String,
    created_time       DateTime64(3, 'UTC'),
    modified_time      DateTime64(3, 'UTC'),
    activity_id        UInt8,
    rule_uid           LowCardinality(String),
    rule_name          LowCardinality(String),
    title              String,
    severity_id        UInt8,
    risk_score         UInt8,
    session_risk       Float32,
    response           LowCardinality(String),
    mode               LowCardinality(String),
    kill_signal_jti    String,
    session_id         String,
    agent_id           LowCardinality(String),
    workload_id        LowCardinality(String),
    trigger_event_id   String,
    trigger_seq        Nullable(UInt64),
    evidence_event_ids Array(String),
    tags               Array(LowCardinality(String)),
    attacks            Array(LowCardinality(String)),
    message            String,
    stored_at          DateTime64(3, 'UTC'),
    finding_json       String CODEC(ZSTD(3)),
    INDEX idx_rule rule_uid TYPE set(100) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(modified_time)
ORDER BY (tenant, root_session_id, alert_uid)
SETTINGS non_replicated_deduplication_window = 1000
""",
    """
CREATE TABLE IF NOT EXISTS {db}.kill_signals
(
    tenant          LowCardinality(String),
    root_session_id String,
    jti             String,
    iat             DateTime64(3, 'UTC'),
    txn             String,
    session_id      String,
    agent_uri       LowCardinality(String),
    token_jti       String,
    audience        Array(LowCardinality(String)),
    reason          String,
    stored_at       DateTime64(3, 'UTC'),
    claims_json     String CODEC(ZSTD(3)),
    compact_jws     String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (tenant, root_session_id, jti)
SETTINGS non_replicated_deduplication_window = 1000
""",
    """
CREATE TABLE IF NOT EXISTS {db}.privileged_actions
(
    tenant            LowCardinality(String),
    root_session_id   String,
    time              DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    uid               String,
    event_id          String,
    session_id        String,
    parent_session_id String,
    seq               Nullable(UInt64),
    kind              LowCardinality(String),
    tool_name         LowCardinality(String),
    tool_server       LowCardinality(String),
    tool_call_id      String CODEC(ZSTD(1)),
    outcome           LowCardinality(String),
    argument_names    Array(String),
    capabilities      Array(String),
    all_capabilities  Array(String),
    destinations      Array(String),
    external          Nullable(Bool),
    environment       LowCardinality(String),
    resources         Array(String),
    agent_id          LowCardinality(String),
    agent_version     LowCardinality(String),
    workload_id       LowCardinality(String),
    on_behalf_of      String CODEC(ZSTD(1)),
    act_chain         Array(String),
    credential        String CODEC(ZSTD(3)),
    scope             String CODEC(ZSTD(3)),
    in_scope          Nullable(Bool),
    delegation        String CODEC(ZSTD(3)),
    risk              Float32,
    killed            Bool,
    schema_version    LowCardinality(String),
    stored_at         DateTime64(3, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_caps capabilities TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_agent agent_id TYPE set(1000) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toDate(time)
ORDER BY (tenant, root_session_id, time, uid)
SETTINGS non_replicated_deduplication_window = 1000
""",
    """
CREATE TABLE IF NOT EXISTS {db}.sessions
(
    tenant          LowCardinality(String),
    root_session_id String,
    first_time      SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_time       SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events          AggregateFunction(uniqExact, String),
    agents          SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    task            SimpleAggregateFunction(max, String),
    ended           SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, root_session_id)
""",
    """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions AS
SELECT
    tenant,
    root_session_id,
    min(time) AS first_time,
    max(time) AS last_time,
    uniqExactState(event_id) AS events,
    groupUniqArray(toString(agent_id)) AS agents,
    max(if(kind = 'session_start' AND session_id = root_session_id, task, '')) AS task,
    max(kind = 'session_end' AND session_id = root_session_id) AS ended
FROM {db}.events
GROUP BY tenant, root_session_id
""",
)


def ddl(database: str) -> list[str]:
    """The statements creating the database, tables and views (idempotent)."""
    if not database.replace("_", "").isalnum():
        raise ValueError(f"database name {database!r} must be letters, digits and underscores")
    return [stmt.format(db=database).strip() for stmt in _DDL]


#: The read that returns each event of a root session exactly once, in order (replay uses it;
#: ``first``/``last`` come from the ``sessions`` lookup table).
EXACTLY_ONCE_READ: Final = """
SELECT * FROM {db}.events FINAL
WHERE tenant = {{tenant:String}} AND root_session_id = {{root:String}}
  AND time BETWEEN {{first:DateTime64(3, 'UTC')}} AND {{last:DateTime64(3, 'UTC')}}
ORDER BY time, seq, event_id
LIMIT 1 BY event_id
"""
