"""The ``agentwatch`` command line (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="agentwatch",
    help="Streaming runtime behaviour monitor for AI agents and other non-human identities.",
    no_args_is_help=True,
    add_completion=False,
)

schema_app = typer.Typer(help="Wire contracts as JSON Schema.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

from monitor.rules_cli import rules_app  # noqa: E402

app.add_typer(rules_app, name="rules")


@schema_app.command("event")
def schema_event() -> None:
    """Print the JSON Schema of the action event (for producers)."""
    from schemas.events import event_json_schema

    json.dump(event_json_schema(), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


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
