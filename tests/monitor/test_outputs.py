"""The outbox's bookkeeping (pure logic; the sends themselves are tested against Tansu in
test_worker.py and test_durability.py): every record handed over is tracked until a checkpoint
settles it, failures are counted then, and kill signals are counted when acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from monitor.decisions import Record
from monitor.durability import Durability
from monitor.metrics import Metrics
from monitor.outputs import Outputs, Send


class Producer:
    """Answers each send with a future the test resolves (as aiokafka's producer does)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if topic in self.refuse:
            raise RuntimeError(f"cannot send to {topic}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_records_are_tracked_until_settled_and_failures_counted() -> None:
    async def run() -> None:
        metrics = Metrics()
        producer = Producer(refuse={"refused"})
        outputs = Outputs(SimpleNamespace(producer=producer), SimpleNamespace(), metrics)  # type: ignore[arg-type]
        rec = Record(b"k", b"v", [])
        outputs.outbox.extend(
            [
                Send("monitor.alerts", rec, "alert"),
                Send("refused", rec, "privileged"),
                Send("agent.privileged", rec, "privileged"),
                Send("agent.revocations", rec, "kill", decided_at=0.0),
            ]
        )
        await outputs.flush()
        assert not outputs.outbox and len(outputs.inflight) == 4
        ok, broken, kill = producer.futures
        ok.set_result("ack")
        broken.set_exception(RuntimeError("broker said no"))
        kill.set_result("ack")
        await asyncio.sleep(0)  # the kill signal's callback runs
        assert _value(metrics, "agentwatch_kill_signals_published_total",
                      event_type="session-revoked") == 1  # fmt: skip

        durability = Durability.__new__(Durability)
        durability.m = SimpleNamespace(outputs=outputs)  # type: ignore[assignment]
        retried: list[str] = []

        async def resend(item: Send) -> asyncio.Future[Any]:
            retried.append(item.topic)
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result("ack")
            return done

        outputs.send = resend  # type: ignore[method-assign]
        await durability._settle(outputs.take_inflight())  # noqa: SLF001
        assert sorted(retried) == ["agent.privileged", "refused"]
        assert _value(metrics, "agentwatch_publish_errors_total", topic="refused") == 1
        assert _value(metrics, "agentwatch_publish_errors_total", topic="agent.privileged") == 1
        assert _value(metrics, "agentwatch_publish_errors_total", topic="monitor.alerts") == 0
        assert outputs.inflight == []

    asyncio.run(run())
