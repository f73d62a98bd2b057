"""The ``agentwatch`` command line (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="agentwatch",
    help="Streaming runtime behaviour monitor for AI agents and other non-human identities.",
    no_args_is_help=True,
    add_completion=False,
)

schema_app = typer.Typer(help="Wire contracts as JSON Schema.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
revocations_app = typer.Typer(help="Kill signals on the revocation topic.", no_args_is_help=True)
app.add_typer(revocations_app, name="revocations")

from monitor.rules_cli import rules_app  # noqa: E402

app.add_typer(rules_app, name="rules")


@schema_app.command("event")
def schema_event() -> None:
    """Print the JSON Schema of the action event (for producers)."""
    from schemas.events import event_json_schema

    json.dump(event_json_schema(), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def _settings(profile: str | None, **overrides: Any) -> Any:
    from monitor.settings import Settings

    return Settings.from_env(
        profile=profile, **{k: v for k, v in overrides.items() if v is not None}
    )


@app.command("worker")
def worker(
    profile: str = typer.Option(None, help="Settings profile (production, embedded)."),
    broker: str = typer.Option(None, help="Broker URL, e.g. kafka://127.0.0.1:9092."),
    web_port: int = typer.Option(None, help="Port of the worker's HTTP endpoints."),
) -> None:
    """Run the stream worker (settings from AGENTWATCH_* environment variables)."""
    from monitor.worker import run_worker

    raise typer.Exit(run_worker(_settings(profile, broker=broker, web_port=web_port)))


@app.command("demo")
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 60.0,
    attack_ratio: Annotated[
        float, typer.Option(help="Share of simulated sessions that attack.")
    ] = 0.15,
    seed: Annotated[int, typer.Option(help="Simulator seed (same seed, same traffic).")] = 0,
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps logs, keys and ClickHouse data.")
    ] = Path("var/demo"),
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "--rules",
            exists=True,
            help="Rule files or directories to load after the built-in pack (repeatable); "
            "the worker hot-reloads them while the demo runs.",
        ),
    ] = None,
) -> None:
    """Run everything on this machine and watch it: broker, worker, ClickHouse, agents."""
    from monitor.demo import run_demo
    from schemas.errors import AgentwatchError

    try:
        code = run_demo(
            duration=duration,
            rate=rate,
            attack_ratio=attack_ratio,
            seed=seed,
            workdir=workdir,
            rules_paths=rules,
        )
    except AgentwatchError as exc:
        typer.echo(f"agentwatch demo: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@topics_app.command("create")
def topics_create(
    bootstrap: str = typer.Option(..., help="host:port of a broker."),
    profile: str = typer.Option(None, help="Settings profile (production, embedded)."),
) -> None:
    """Create the topics the worker needs (existing ones are left alone)."""
    from monitor.topics import ensure_topics

    created = ensure_topics(bootstrap, _settings(profile))
    typer.echo("created: " + (", ".join(created) if created else "nothing (all exist)"))


@revocations_app.command("follow")
def revocations_follow(
    bootstrap: str = typer.Option(..., help="host:port of a broker."),
    jwks: str = typer.Option(..., help="JWKS URL of the worker (/.well-known/jwks.json)."),
    issuer: str = typer.Option(None, help="Expected iss (default: AGENTWATCH_ISSUER)."),
    audience: str = typer.Option(None, help="This receiver's audience value."),
    group: str = typer.Option("agentwatch-revocation-consumer", help="Consumer group id."),
    from_beginning: bool = typer.Option(False, help="Start at the oldest retained signal."),
    max_age: float = typer.Option(300.0, help="Accept signals issued at most this long ago (s)."),
) -> None:
    """Follow kill signals: verify each one, print it once per jti (JSON lines)."""
    from monitor.revocations import Received, RevocationVerifier, follow

    s = _settings(None)
    verifier = RevocationVerifier(
        jwks, issuer=issuer or s.issuer, audience=audience or s.audience[0], max_age_s=max_age
    )

    def show(r: Received) -> None:
        out: dict[str, Any] = {"outcome": r.outcome, "jti": r.jti}
        if r.claims is not None:
            out["session"] = r.claims.sub_id.session.id
            out["txn"] = r.claims.txn
            out["iat"] = r.claims.iat
        if r.reason:
            out["reason"] = r.reason
        stream = sys.stderr if r.outcome == "invalid" else sys.stdout
        stream.write(json.dumps(out) + "\n")
        stream.flush()

    try:
        follow(
            bootstrap,
            s.topic_revocations,
            verifier,
            show,
            group_id=group or None,
            from_beginning=from_beginning,
        )
    except KeyboardInterrupt:
        pass


@app.command("score")
def score(
    events: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL action events.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write alerts (JSONL) here.")
    ] = None,
    learned_state: Annotated[
        Path | None,
        typer.Option("--learned-state", help="Load learned baselines from this file first."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            exists=True,
            dir_okay=False,
            help="Labels (JSONL, as `simulate --labels` writes): print kill/alert rates per "
            "attack family and benign agent.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score a file of events offline with the stream worker's detectors; write alerts.

    Events are processed in file order, as a stream would deliver them, by the engine the
    worker's settings describe (AGENTWATCH_RULES_PATHS, AGENTWATCH_CATALOG_PATH,
    AGENTWATCH_INTERNAL_DOMAINS, thresholds). Alerts (OCSF Detection Findings, kill decisions
    included, with the trigger event's seq under ``unmapped.agentwatch.trigger_seq``) go to
    ``--out`` or to standard output.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from monitor.detection import engine_from_settings
    from monitor.evaluation import Outcomes, family_tables, tally
    from monitor.scoring import score_file
    from monitor.settings import Settings

    engine = engine_from_settings(Settings.from_env())
    labelled = [json.loads(line) for line in labels.open("rb") if line.strip()] if labels else None
    outcomes = Outcomes(lab.get("harm_event_id") for lab in labelled or () if lab)
    if learned_state is not None:
        engine.load_learned_state(learned_state.read_bytes())
    with events.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    err = Console(stderr=True)
    sink = out.open("wb") if out is not None else sys.stdout.buffer
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=quiet,
        ) as bar:
            task = bar.add_task(f"scoring {events.name}", total=max(1, lines))

            def seen(ev: Any) -> None:
                bar.advance(task)
                outcomes.saw(ev.event_id, ev.ts)

            summary = score_file(events, sink, engine, on_event=seen, on_decisions=outcomes.add)
            bar.update(task, completed=max(1, lines))
    finally:
        if out is not None:
            sink.close()
    err.print(
        f"{summary.events} events, {summary.sessions} sessions: {summary.alerts} alerts, "
        f"{summary.kills} kills; {summary.invalid} invalid lines"
    )
    for reason in summary.invalid_reasons:
        err.print(f"  {reason}", style="yellow")
    if labelled is not None:
        for table in family_tables(tally(labelled, outcomes), events.name):
            err.print(table)


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Events per second to produce.")] = 200.0,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka HOST:PORT (default: from AGENTWATCH_BROKER).")
    ] = None,
    sessions: Annotated[
        int | None, typer.Option(help="Root sessions to simulate (default: endless).")
    ] = None,
    attack_ratio: Annotated[float, typer.Option(help="Share of sessions that are attacks.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same traffic).")] = 0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    topic: Annotated[
        str | None, typer.Option(help="Topic (default: the actions topic of the settings).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write events as JSON lines here instead of Kafka.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Write per-session labels here (JSON lines; to Kafka: as they start)."),
    ] = None,
    jwks: Annotated[
        str | None,
        typer.Option(
            help="Act as a gateway that honours kill signals: follow the revocation topic, "
            "verify each signal against this JWKS URL, stop revoked sessions."
        ),
    ] = None,
    ignore_revocations: Annotated[
        float, typer.Option(help="With --jwks: share of sessions whose gateway ignores kills.")
    ] = 0.0,
    stats: Annotated[
        Path | None, typer.Option(help="Write running totals here (JSON, every second).")
    ] = None,
) -> None:
    """Produce realistic agent traffic (six agent types, a share of attacks)."""
    from datetime import UTC, datetime

    from monitor.settings import Settings
    from monitor.simulator import EVENTS_PER_SESSION, Simulator, produce, write_files

    if out is not None:
        sim = Simulator(seed=seed, sessions=sessions or 1000, attack_ratio=attack_ratio)
        n = write_files(sim, out, labels)
        attacks = sum(1 for lab in sim.labels.values() if lab.label == "attack")
        typer.echo(f"wrote {n} events of {len(sim.labels)} sessions ({attacks} attacks) to {out}")
        return
    settings = Settings.from_env()
    if bootstrap is None:
        bootstrap = settings.broker.split("://", 1)[-1]
    import signal

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # stop as Ctrl-C does: flush, write the last totals

    signal.signal(signal.SIGTERM, on_term)
    sim = Simulator(
        seed=seed,
        sessions=sessions,
        attack_ratio=attack_ratio,
        start=datetime.now(UTC),
        session_rate=max(rate / EVENTS_PER_SESSION, 0.01),
    )
    gateway = None
    if jwks is not None:
        from monitor.gateway import Gateway
        from monitor.revocations import RevocationVerifier

        verifier = RevocationVerifier(
            jwks, issuer=settings.issuer, audience=settings.audience[0], max_age_s=600
        )
        gateway = Gateway(
            verifier, harm_of=sim.harm_roots.get, ignore_share=ignore_revocations, seed=seed
        )
        gateway.follow(bootstrap, settings.topic_revocations, settings.topic_partitions)
    try:
        sent = produce(
            sim,
            bootstrap=bootstrap,
            topic=topic or settings.topic_actions,
            rate=rate,
            duration_s=duration,
            gateway=gateway,
            stats_path=stats,
            labels_path=labels,
        )
    finally:
        if gateway is not None:
            gateway.close()
    typer.echo(f"sent {sent} events to {topic or settings.topic_actions} on {bootstrap}")
    if gateway is not None:
        g = gateway.stats
        typer.echo(
            f"gateway: {g.sessions_revoked} sessions revoked, {g.events_blocked} events refused,"
            f" {g.harms_prevented} harmful steps prevented"
        )


@app.command()
def replay(
    session_id: Annotated[str, typer.Argument(help="Root session id.")],
    store: Annotated[
        str | None,
        typer.Option(help="ClickHouse URL (http://host:8123) or a stopped worker's chdb:///path."),
    ] = None,
    worker: Annotated[
        str | None, typer.Option(help="A running worker's web URL (reads its API).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: any).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | jsonl")] = "table",
    png: Annotated[Path | None, typer.Option(help="Also draw the timeline to this PNG.")] = None,
) -> None:
    """Replay one root session: its steps, alerts and kill signals, in order."""
    from monitor import replay as rp
    from monitor import replay_render as rr
    from monitor.settings import Settings
    from schemas.errors import SinkError

    settings = Settings.from_env()
    try:
        if worker:
            rec = rp.fetch_from_worker(worker, session_id, tenant)
        else:
            reader = rp.StoreReader(store or settings.store_url, settings.store_database)
            try:
                rec = rp.load(reader, session_id, tenant)
            finally:
                reader.close()
    except SinkError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not rec.events and not rec.alerts:
        typer.echo(f"error: no session {session_id!r} in the store", err=True)
        raise typer.Exit(1)
    rows = rp.timeline(rec)
    if fmt == "jsonl":
        rr.write_jsonl(rows, sys.stdout)
    elif fmt == "table":
        rr.render_table(rec, rows)
    else:
        typer.echo(f"error: --format must be table or jsonl, not {fmt!r}", err=True)
        raise typer.Exit(2)
    if png is not None:
        rr.write_png(rec, rows, png)
        typer.echo(f"timeline drawn to {png}", err=True)


@app.command()
def sessions(
    store: Annotated[
        str | None,
        typer.Option(help="ClickHouse URL (http://host:8123) or a stopped worker's chdb:///path."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: any).")] = None,
    alerted: Annotated[bool, typer.Option(help="Only sessions with alerts.")] = False,
    limit: Annotated[int, typer.Option(help="How many (newest activity first).")] = 30,
) -> None:
    """List recent root sessions with their risk, alerts and kills (to pick one to replay)."""
    from rich.console import Console
    from rich.table import Table

    from monitor import replay as rp
    from monitor.settings import Settings
    from schemas.errors import SinkError

    settings = Settings.from_env()
    try:
        reader = rp.StoreReader(store or settings.store_url, settings.store_database)
        try:
            rows = reader.sessions(tenant=tenant, limit=limit, only_alerted=alerted)
        finally:
            reader.close()
    except SinkError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"{len(rows)} root sessions, newest first")
    for col in (
        "last activity",
        "root session",
        "tenant",
        "agents",
        "events",
        "alerts",
        "risk",
        "kills",
        "task",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["last_time"].strftime("%Y-%m-%d %H:%M:%S"),
            r["root_session_id"],
            r["tenant"],
            ", ".join(r["agents"]),
            str(r["events"]),
            str(r["alerts"]),
            f"{r['risk']:.2f}" if r["alerts"] else "",
            str(r["kills"]) if r["kills"] else "",
            (r["task"] or "")[:80],
            style="bold red" if r["kills"] else ("yellow" if r["alerts"] else None),
        )
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
