"""The scoring loop: every record of the action topic through its partition's pipeline.

Records come a fetch at a time from the consumer (``monitor.transport``: faust's per-record
stream machinery costs more than detection), partition by partition in offset order, and are
processed one at a time and synchronously (``Monitor.on_record``). What they produce is
queued; a kill signal is handed to its producer as soon as it is decided (the loop awaits
the send before the next record), everything else at the end of a fetch once
``monitor.outputs.HANDOVER_EVERY_S`` has passed since the last hand-over. The loop also
lets the event loop run (timers, web, heartbeats) at least every ``YIELD_EVERY_S``, and stops
as soon as a rebalance begins: the records left are fetched again after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from faust.types import TP, TopicT

if TYPE_CHECKING:
    from monitor.runtime import Monitor

#: longest stretch of processing without letting other tasks run (s)
YIELD_EVERY_S = 0.005


def register(monitor: Monitor) -> None:
    app = monitor.app
    on_record = monitor.on_record
    outputs = monitor.outputs
    flush = outputs.flush
    due = outputs.due
    clock = time.perf_counter
    fetch_records = monitor.metrics.fetch_records.observe

    async def on_batch(generation: int, records: Mapping[TP, list[Any]]) -> None:
        consumer: Any = app.consumer
        fetch_records(sum(map(len, records.values())))
        pause_at = clock() + YIELD_EVERY_S
        for tp, recs in records.items():
            partition = tp.partition
            for rec in recs:
                on_record(partition, rec.offset, rec.key, rec.value, rec.headers)
                if outputs.urgent or clock() >= pause_at:
                    if due(clock()):
                        await flush()
                    await asyncio.sleep(0)
                    if app.consumer_generation_id != generation or not consumer.flow_active:
                        return  # a rebalance started: the rest is fetched again after it
                    pause_at = clock() + YIELD_EVERY_S
        if due(clock()):
            await flush()

    app.on_source_batch = on_batch
    app.source_topic = monitor.settings.topic_actions
    # subscribe to the action topic (what iterating it in an agent would do)
    app.topics.add(cast(TopicT, monitor.topics.actions.clone(is_iterator=True)))
