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
    from monitor.runtime import run_worker

    raise typer.Exit(run_worker(_settings(profile, broker=broker, web_port=web_port)))


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score a file of events offline with the stream worker's detectors; write alerts.

    Events are processed in file order, as a stream would deliver them. Alerts (OCSF
    Detection Findings, kill decisions included, with the trigger event's seq under
    ``unmapped.agentwatch.trigger_seq``) go to ``--out`` or to standard output.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from detectors.registry import build_engine
    from monitor.scoring import score_file

    engine = build_engine()
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
            summary = score_file(events, sink, engine, on_event=lambda _: bar.advance(task))
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
