"""The worker's HTTP endpoints (faust web): keys, SSF metadata, health, metrics.

* ``/.well-known/jwks.json`` - the public key(s) kill signals are signed with;
* ``/.well-known/ssf-configuration`` - Shared Signals transmitter metadata: ``issuer``,
  ``jwks_uri``, ``delivery_methods_supported`` (the private ``urn:agentwatch:delivery:kafka``:
  SETs on a Kafka topic; SSF has no standard Kafka delivery);
* ``/healthz`` - the process answers; ``/readyz`` - partitions restored and not rebalancing;
* ``/metrics`` - Prometheus text format;
* ``/api/sessions`` and ``/api/sessions/{root}/replay`` - what the event store holds (a list of
  recent root sessions; one session's events, alerts and kill signals), read through the
  worker because an embedded store can be open in one process only (``agentwatch replay
  --worker URL``). Query parameters: ``tenant``, ``limit``, ``only_alerted``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from monitor.metrics import CONTENT_TYPE_LATEST
from schemas.errors import AgentwatchError

if TYPE_CHECKING:
    from monitor.runtime import Monitor

KAFKA_DELIVERY = "urn:agentwatch:delivery:kafka"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


def register(monitor: Monitor) -> None:
    app = monitor.app
    settings = monitor.settings

    @app.page("/.well-known/jwks.json")
    async def jwks(view: Any, request: Any) -> Any:
        return view.json(monitor.signer.jwks(), headers={"Cache-Control": "max-age=300"})

    @app.page("/.well-known/ssf-configuration")
    async def ssf_configuration(view: Any, request: Any) -> Any:
        origin = str(request.url.origin())
        return view.json(
            {
                "spec_version": "1_0",
                "issuer": settings.issuer,
                "jwks_uri": origin + "/.well-known/jwks.json",
                "delivery_methods_supported": [KAFKA_DELIVERY],
                "critical_subject_members": ["session"],
                KAFKA_DELIVERY: {
                    "topic": settings.topic_revocations,
                    "content_type": "application/secevent+jwt",
                    "key": "session id",
                },
            }
        )

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        ready = monitor.ready and not app.rebalancing
        body = {
            "ready": ready,
            "partitions": sorted(monitor.partitions),
            "rebalancing": bool(app.rebalancing),
        }
        return view.json(body, status=200 if ready else 503)

    @app.page("/api/sessions/{root}/replay")
    async def session_replay(view: Any, request: Any, root: str) -> Any:
        from monitor.replay import session_replay

        tenant = request.query.get("tenant") or None
        try:
            doc = await asyncio.to_thread(session_replay, monitor.sink, root, tenant)
        except AgentwatchError as exc:
            return view.json({"error": str(exc)}, status=503)
        return view.json(doc)

    @app.page("/api/sessions")
    async def sessions(view: Any, request: Any) -> Any:
        from monitor.replay import sessions_document

        q = request.query
        try:
            limit = max(1, min(1000, int(q.get("limit", "50"))))
        except ValueError:
            return view.json({"error": "limit must be an integer"}, status=400)
        kw = {
            "tenant": q.get("tenant") or None,
            "limit": limit,
            "only_alerted": q.get("only_alerted", "").lower() in ("1", "true", "yes"),
        }
        try:
            rows = await asyncio.to_thread(sessions_document, monitor.sink, **kw)
        except AgentwatchError as exc:
            return view.json({"error": str(exc)}, status=503)
        return view.json(rows)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the content type
        return view.bytes(monitor.metrics.exposition(), content_type=METRICS_CONTENT_TYPE)
