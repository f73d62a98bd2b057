"""``agentwatch rules ...``: test, lint, list and document detection rules.

* ``rules test [PATH...]`` runs every rule's fixtures through the same pipeline as the
  worker and prints a pass/fail table; exits 1 if a case fails (or a rule has no fixture).
* ``rules lint [PATH...]`` loads and validates without running: every error with file:line.
* ``rules list [PATH...]`` shows the loaded rules: type, scope, priority, action, mode, tags.
* ``rules fields`` lists the fields conditions and outputs can use.

Without PATH the built-in pack is used; with PATH, the built-in pack loads first (so user
rules can use its macros and override its rules) and only PATH's rules are tested.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from detectors.catalog import ToolCatalog
from detectors.catalog_file import load_catalog
from detectors.rules.fields import describe
from detectors.rules.loader import BUILTIN_DIR, load_rules
from detectors.rules.model import RuleSet
from monitor.rule_tests import fixture_files, rules_under, run_fixtures
from schemas.errors import ConfigError, RuleError

rules_app = typer.Typer(help="Test, lint and list detection rules.", no_args_is_help=True)
console = Console()

PATHS = typer.Argument(None, help="Rule files or directories (default: the built-in pack).")
NO_BUILTIN = typer.Option(False, "--no-builtin", help="Do not load the built-in pack first.")
CATALOG = typer.Option(None, "--catalog", help="Tool catalog file to classify events with.")


def _load(paths: list[Path] | None, no_builtin: bool) -> tuple[RuleSet, list[Path]]:
    chosen = list(paths or [])
    try:
        if not chosen:
            return load_rules(), [BUILTIN_DIR]
        return load_rules(chosen, builtin=not no_builtin), chosen
    except RuleError as exc:
        console.print(f"[bold red]{len(exc.errors)} error(s) in rule files[/]")
        for e in exc.errors:
            console.print(f"  {e}", markup=False, highlight=False)
        raise typer.Exit(1) from None


@rules_app.command("test")
def rules_test(
    paths: list[Path] | None = PATHS,
    no_builtin: bool = NO_BUILTIN,
    catalog: Path | None = CATALOG,
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Do not fail rules that have no fixture file."
    ),
) -> None:
    """Run each rule's fixtures (positive and negative cases) and report pass/fail."""
    ruleset, roots = _load(paths, no_builtin)
    cat: ToolCatalog | None = None
    if catalog is not None:
        try:
            cat = load_catalog(catalog)
        except ConfigError as exc:
            console.print(f"[red]{exc}[/]", markup=False)
            raise typer.Exit(1) from None
    results = run_fixtures(ruleset, roots, catalog=cat, require=not allow_missing)
    table = Table(title=f"Rule fixtures ({ruleset.version})", show_lines=False)
    table.add_column("rule")
    table.add_column("case")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for r in results:
        status = "[green]pass[/]" if r.ok else "[bold red]FAIL[/]"
        table.add_row(r.rule, r.case, status, "; ".join(r.problems) or "")
    console.print(table)
    failed = [r for r in results if not r.ok]
    rules = {r.rule for r in results}
    summary = f"{len(results) - len(failed)}/{len(results)} cases passed for {len(rules)} rules"
    console.print(("[bold red]" if failed or not results else "[bold green]") + summary + "[/]")
    if failed or not results:
        raise typer.Exit(1)


@rules_app.command("lint")
def rules_lint(paths: list[Path] | None = PATHS, no_builtin: bool = NO_BUILTIN) -> None:
    """Validate rule files without running them; list every problem with file:line."""
    ruleset, roots = _load(paths, no_builtin)
    ids = rules_under(ruleset, roots)
    fixtures = fixture_files(ruleset, roots)
    warnings = []
    for rid in ids:
        rule = ruleset.rules[rid]
        if not rule.tags and not rule.attacks:
            warnings.append(f"Rule {rid} has no taxonomy tags in {rule.where}")
        if rid not in fixtures:
            warnings.append(f"Rule {rid} has no fixture file (tests/{rid}.yaml) in {rule.where}")
    for w in warnings:
        console.print(f"[yellow]warning[/] {w}", highlight=False)
    console.print(
        f"[bold green]{len(ids)} rules OK[/] ({len(ruleset)} loaded, pack {ruleset.version})"
    )


@rules_app.command("list")
def rules_list(paths: list[Path] | None = PATHS, no_builtin: bool = NO_BUILTIN) -> None:
    """Show the loaded rules with their type, scope, priority, action, mode and tags."""
    ruleset, _ = _load(paths, no_builtin)
    table = Table(title=f"{len(ruleset)} rules (pack {ruleset.version})")
    for col in ("id", "title", "type", "by", "severity", "action", "mode", "tags"):
        table.add_column(col, overflow="fold")
    for r in sorted(ruleset.rules.values(), key=lambda r: r.id):
        mode = r.mode if r.enabled else "[dim]disabled[/]"
        table.add_row(
            r.id, r.title, r.type, r.by, r.severity, r.action, mode, " ".join(r.tags + r.attacks)
        )
    console.print(table)


@rules_app.command("fields")
def rules_fields() -> None:
    """List the fields rule conditions and outputs can read."""
    table = Table(title="Rule fields")
    table.add_column("field")
    table.add_column("type")
    table.add_column("meaning", overflow="fold")
    for name, ftype, doc in describe():
        table.add_row(name, ftype, doc)
    console.print(table)
