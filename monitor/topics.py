"""Every topic agentwatch reads or writes, in one place.

Values and keys are raw bytes throughout: the worker parses events itself (a typed parse is
faster than a faust codec, and an undecodable record must reach the dead-letter topic exactly
as it arrived). The action topic is declared with ``acks=False``: faust does not commit its
offsets; the checkpointer commits the offset up to which everything is durable
(``monitor.checkpoint``). The checkpoint topic is co-partitioned with the action topic.

>>> [t.name for t in topic_specs(Settings(app_id="aw"))][:2]
['agent.actions', 'agent.actions.dlq']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.settings import Settings

if TYPE_CHECKING:
    import faust


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: its name, partition count and cleanup policy."""

    name: str
    partitions: int
    compact: bool = False


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics the worker needs, all with ``settings.topic_partitions`` partitions."""
    n = settings.topic_partitions
    return [
        TopicSpec(settings.topic_actions, n),
        TopicSpec(settings.topic_dlq, n),
        TopicSpec(settings.topic_late, n),
        TopicSpec(settings.topic_alerts, n),
        TopicSpec(settings.topic_revocations, n),
        TopicSpec(settings.topic_privileged, n),
        TopicSpec(settings.checkpoint_topic, n, compact=True),
    ]


def ensure_topics(bootstrap: str, settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [s for s in topic_specs(settings) if s.name not in existing]
        if missing:
            new = [
                NewTopic(
                    s.name,
                    s.partitions,
                    settings.topic_replication,
                    topic_configs={"cleanup.policy": "compact"} if s.compact else {},
                )
                for s in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass  # created concurrently by another worker
        return [s.name for s in missing]
    finally:
        admin.close()


@dataclass(frozen=True, slots=True)
class Topics:
    """The faust topic objects of one app."""

    actions: faust.TopicT
    dlq: faust.TopicT
    late: faust.TopicT
    alerts: faust.TopicT
    revocations: faust.TopicT
    privileged: faust.TopicT
    checkpoints: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare every topic on ``app`` (raw bytes keys and values)."""
    n = settings.topic_partitions
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": n,
        "replicas": settings.topic_replication,
    }
    return Topics(
        actions=app.topic(settings.topic_actions, acks=False, **raw),
        dlq=app.topic(settings.topic_dlq, **raw),
        late=app.topic(settings.topic_late, **raw),
        alerts=app.topic(settings.topic_alerts, **raw),
        revocations=app.topic(settings.topic_revocations, **raw),
        privileged=app.topic(settings.topic_privileged, **raw),
        checkpoints=app.topic(settings.checkpoint_topic, compacting=True, **raw),
    )
