"""The ``agentwatch`` command line (typer)."""

from __future__ import annotations

import json
import sys

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
