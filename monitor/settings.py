"""Worker settings: defaults, overridden by environment variables ``AGENTWATCH_<NAME>``.

Every topic name is configurable. Lists are comma-separated in the environment
(``AGENTWATCH_INTERNAL_DOMAINS=acme.com,acme.internal``); durations are seconds.

A *profile* changes defaults before the environment is read: ``embedded`` (the demo and the
tests, on the embedded Tansu broker and chdb) lowers the consumer fetch wait and the rebalance
timeouts that Tansu holds requests for; production defaults stay Kafka's.
``AGENTWATCH_PROFILE=embedded`` or ``Settings.from_env(profile="embedded")``.

>>> s = Settings.from_env({"AGENTWATCH_TOPIC_ACTIONS": "t1", "AGENTWATCH_KILL_THRESHOLD": "0.8"})
>>> s.topic_actions, s.kill_threshold
('t1', 0.8)
>>> Settings.from_env({}, profile="embedded").fetch_max_wait_ms
5
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import ConfigError


class Settings(BaseModel):
    """Everything the worker, the demo and the CLI tools can be told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- Kafka -------------------------------------------------------------------------
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "agentwatch"
    topic_actions: str = "agent.actions"
    topic_dlq: str = "agent.actions.dlq"
    topic_late: str = "agent.actions.late"
    topic_alerts: str = "monitor.alerts"
    topic_revocations: str = "agent.revocations"
    topic_privileged: str = "agent.privileged"
    #: session checkpoints, co-partitioned with ``topic_actions`` (default ``<app_id>-sessions``)
    topic_checkpoints: str = ""
    topic_partitions: int = 4
    topic_replication: int = 1
    #: consumer fetch wait (ms); low on the embedded broker, which holds fetches until it expires
    fetch_max_wait_ms: int = 500
    broker_rebalance_timeout_s: float = 60.0
    broker_session_timeout_s: float = 60.0
    producer_linger_ms: int = 5
    #: how long a produce request may go unanswered before it fails and is retried (faust's
    #: default, 20 minutes, would hold a checkpoint - and with it the stream - that long)
    producer_request_timeout_s: float = 30.0
    #: largest record the worker produces (dead-lettered records keep their original size)
    producer_max_request_size: int = 16_777_216
    #: largest batch of records per partition the worker's producer sends at once (faust's
    #: 16 KiB made one checkpoint thousands of produce requests, see monitor.durability)
    producer_max_batch_size: int = 1_048_576
    #: most records one fetch hands to the scoring loop (faust's ``broker_max_poll_records``;
    #: the Java consumer's ``max.poll.records`` default). Without a cap one fetch of a backlog
    #: hands over everything prefetched, up to 1 MiB a partition (~1,400 records each), and a
    #: catching-up worker holds those records and what they produce at once; its allocators
    #: keep that peak, so RSS crept up with every catch-up (docs/memory.md, thirteenth round:
    #: three soaks pooled, +0.76 MiB/min uncapped, flat capped). 0: no cap
    max_poll_records: int = Field(default=500, ge=0)

    # -- input validation ----------------------------------------------------------------
    max_event_bytes: int = 1_048_576

    # -- session state -------------------------------------------------------------------
    reorder_wait_s: float = 2.0
    grace_s: float = 300.0
    #: an ended session is evicted this long after its end, on processing time, or on event
    #: time (the newest event time seen, capped at the wall clock) once it has been idle
    #: ``ended_min_idle_s`` (monitor.pipeline): a worker catching up holds what the traffic
    #: ended in the last ``ended_ttl_s``, not what it read
    ended_ttl_s: float = 300.0
    ended_min_idle_s: float = 60.0
    idle_ttl_s: float = 3600.0
    max_sessions: int = 1_000_000
    #: how long (s) an evicted ended or killed session's tombstone is kept, and at most how
    #: many per partition (see ``monitor.pipeline``: activity after an end or a kill)
    tombstone_ttl_s: float = 3600.0
    max_tombstones: int = 100_000
    #: how often the sessions changed since the last checkpoint are written (s): after a crash
    #: at most this much of the input is replayed (deduplicated by event id, kills by jti).
    #: Each write pickles every session that changed, so a short interval re-pickles an active
    #: session many times: at 2,000 events/s, 1 s cost the worker ~0.1 of a core more than 5 s
    checkpoint_interval_s: float = 5.0
    #: most bytes of pickled sessions a checkpoint holds at once (monitor.durability)
    checkpoint_slice_bytes: int = 4_194_304
    #: how often held-back events are released and idle sessions evicted
    tick_interval_s: float = 0.25
    #: surviving objects are frozen out of Python's cyclic GC after each checkpoint and fully
    #: collected this often (s); 0 leaves the GC as CPython runs it (``monitor.collector``)
    gc_full_interval_s: float = 600.0
    #: free C-heap pages are given back to the system this often (s), at the collector's
    #: quiet points; 0 never (``monitor.heap``)
    heap_trim_interval_s: float = 30.0
    #: C-heap blocks of this many bytes or more are mapped on their own and given back when
    #: freed, at a threshold glibc does not raise (``monitor.heap``); 0 leaves glibc's default
    malloc_mmap_threshold: int = Field(default=1_048_576, ge=0, le=33_554_432)
    datadir: Path = Path("var/agentwatch")

    # -- detection -----------------------------------------------------------------------
    internal_domains: list[str] = Field(default_factory=list)
    catalog_path: Path | None = None
    rules_paths: list[Path] = Field(default_factory=list)
    #: how often the worker polls rule files and the catalog for changes (hot reload)
    rules_reload_interval_s: float = 5.0
    alert_threshold: float = 0.6
    kill_threshold: float = 0.9
    #: "shadow" reports kill decisions without publishing kill signals
    mode: str = "enforce"

    # -- kill signals --------------------------------------------------------------------
    issuer: str = "https://agentwatch.local"
    audience: list[str] = Field(default_factory=lambda: ["urn:agentwatch:revocation-consumers"])
    signing_key_path: Path | None = None
    signing_kid: str | None = None

    # -- storage -------------------------------------------------------------------------
    #: ``http://host:8123`` (ClickHouse server), ``chdb:///abs/path`` (embedded), or ``none``
    store_url: str = "chdb:///tmp/agentwatch-chdb"
    store_database: str = "agentwatch"
    sink_batch_rows: int = 10_000
    sink_flush_interval_s: float = 1.0
    sink_max_buffer_rows: int = 200_000
    #: while ClickHouse refuses inserts, rows older than this go to the disk spool
    sink_spill_after_s: float = 5.0
    #: run the sink (row building, redaction, inserts) in its own process, off the worker's GIL
    sink_process: bool = True
    #: the sink process's CPU niceness (0-19, added at its start, so chdb's threads have it
    #: too): on a shared host, storage yields the cores to detection and the broker; it
    #: catches up when they idle (rows wait in its buffer, bounded as above)
    sink_nice: int = Field(default=10, ge=0, le=19)
    #: redact these argument/output field names (case-insensitive), besides secret-shaped values
    redact_fields: list[str] = Field(
        default_factory=lambda: [
            "password",
            "secret",
            "token",
            "api_key",
            "apikey",
            "authorization",
            "private_key",
            "client_secret",
            "cookie",
        ]
    )
    max_stored_output_chars: int = 4_000
    #: HMAC key file for redaction fingerprints, shared by every worker of a deployment
    #: (default: ``datadir/redaction.key``, created on first use)
    redaction_key_path: Path | None = None

    # -- web -----------------------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: the worker's log level (faust/mode logging)
    log_level: str = "warning"

    @property
    def bootstrap(self) -> list[str]:
        """``host:port`` of each broker in ``broker`` (``kafka://h1:9092;h2:9092``)."""
        out = []
        for part in self.broker.replace(",", ";").split(";"):
            part = part.strip()
            if part:
                out.append(part.split("://", 1)[-1].rstrip("/"))
        return out

    @property
    def checkpoint_topic(self) -> str:
        """The changelog topic holding session checkpoints (one partition per source partition)."""
        return self.topic_checkpoints or f"{self.app_id}-sessions"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, profile: str | None = None, **overrides: Any
    ) -> Settings:
        """Defaults, then the profile's, then ``AGENTWATCH_*`` variables, then keyword overrides."""
        env = os.environ if env is None else env
        profile = profile or env.get("AGENTWATCH_PROFILE") or "production"
        if profile not in PROFILES:
            raise ConfigError(
                f"unknown settings profile {profile!r} (AGENTWATCH_PROFILE); "
                f"choose one of {', '.join(PROFILES)}"
            )
        values: dict[str, Any] = dict(PROFILES[profile])
        for name, field in cls.model_fields.items():
            raw = env.get("AGENTWATCH_" + name.upper())
            if raw is None:
                continue
            ann = field.annotation
            if get_origin(ann) is list or (
                get_origin(ann) is not None and any(get_origin(a) is list for a in get_args(ann))
            ):
                values[name] = [x.strip() for x in raw.split(",") if x.strip()]
            else:
                values[name] = raw
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except Exception as exc:  # pydantic.ValidationError, with field names
            raise ConfigError(f"invalid agentwatch settings: {exc}") from None


#: Defaults per profile. ``embedded`` is for the embedded Tansu broker (demo, tests): Tansu
#: holds a fetch until the fetch wait expires even when data arrives, and holds a group join
#: for about half the rebalance timeout (infra.md), so both are short there. Real Kafka answers
#: fetches as soon as data is there and does not need this.
PROFILES: dict[str, dict[str, Any]] = {
    "production": {},
    "embedded": {
        "fetch_max_wait_ms": 5,
        "broker_rebalance_timeout_s": 6.0,
        "broker_session_timeout_s": 6.0,
    },
}
