"""Drawing a replayed session: a rich table, JSON lines, a PNG timeline (matplotlib).

The rows come from :func:`monitor.replay.timeline`: events in order, each alert right after
the event it was decided on, each kill signal after its alert, ``depth`` for sub-agents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from monitor.replay import SessionRecord
from schemas.errors import SinkError

_SEV_STYLE = {1: "dim", 2: "cyan", 3: "yellow", 4: "bold red", 5: "bold white on red"}


def render_table(rec: SessionRecord, rows: list[dict[str, Any]], console: Any = None) -> None:
    """Print the timeline as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(
        title=f"session {rec.root_session_id}: {len(rec.events)} events, "
        f"{len(rec.alerts)} alerts, {len(rec.signals)} kill signals",
        show_lines=False,
        expand=True,
    )
    for col, kw in (
        ("time", {"no_wrap": True}),
        ("seq", {"justify": "right", "no_wrap": True}),
        ("agent", {"no_wrap": True, "max_width": 28}),
        ("action", {"ratio": 2, "overflow": "fold"}),
        ("capabilities", {"ratio": 2}),
        ("destination", {"ratio": 2, "overflow": "fold"}),
        ("arguments / detail", {"ratio": 3, "overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    for r in rows:
        indent = "  " * r["depth"] + ("└ " if r["depth"] else "")
        stamp = f"+{r['offset_s']:8.3f}s"
        if r["type"] == "event":
            table.add_row(
                stamp,
                "" if r["seq"] is None else str(r["seq"]),
                indent + r["agent"],
                r["what"],
                ", ".join(r["capabilities"]),
                r["destination"],
                r["detail"],
            )
        elif r["type"] == "alert":
            style = _SEV_STYLE.get(int(r["severity_id"] or 0), "")
            table.add_row(
                stamp,
                "",
                indent + "⚠ ALERT",
                r["what"],
                f"risk {r['risk']:.2f} · {r['response']} ({r['mode']})",
                "",
                r["detail"],
                style=style,
            )
        else:
            table.add_row(
                stamp,
                "",
                indent + "✖ KILL",
                r["what"],
                "",
                "",
                r["detail"],
                style="bold white on red",
            )
    console.print(table)


def write_jsonl(rows: list[dict[str, Any]], out: Any) -> None:
    for r in rows:
        out.write(orjson.dumps(r, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode() + "\n")


_CAP_COLORS = (
    ("secret_retrieval", "#d62728"),
    ("payment", "#8c564b"),
    ("destructive_change", "#000000"),
    ("production_write", "#9467bd"),
    ("external_egress", "#ff7f0e"),
    ("untrusted_content", "#17becf"),
    ("credential_change", "#e377c2"),
)


def write_png(rec: SessionRecord, rows: list[dict[str, Any]], path: Path) -> Path:
    """Draw the timeline: one lane per session of the tree, actions coloured by capability,
    alerts as dashed lines, kill signals as red lines."""
    try:
        import matplotlib
    except ImportError:
        raise SinkError("--png needs matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes: dict[str, int] = {}
    labels: list[str] = []
    for r in rows:
        if r["type"] == "event" and r["session_id"] not in lanes:
            lanes[r["session_id"]] = len(lanes)
            labels.append("  " * r["depth"] + f"{r['agent']} ({r['session_id'][:12]})")
    height = 3.2 + 0.5 * max(1, len(lanes))
    fig, ax = plt.subplots(figsize=(13, height))
    markers = {"session_start": ">", "session_end": "s", "delegation": "D"}
    for r in rows:
        if r["type"] != "event":
            continue
        y = lanes[r["session_id"]]
        color = next((c for cap, c in _CAP_COLORS if cap in r["capabilities"]), "#7f7f7f")
        marker = markers.get(r["what"].split(" ")[0], "o")
        ax.scatter(r["offset_s"], y, s=60, color=color, zorder=3, edgecolors="white", marker=marker)
        if r["capabilities"] and color != "#7f7f7f":
            ax.annotate(
                r["what"],
                (r["offset_s"], y),
                textcoords="offset points",
                xytext=(0, 7),
                fontsize=7,
                rotation=25,
            )
    band = ax.get_xaxis_transform()  # x in data, y in axes fractions: labels above the plot
    for r in rows:
        if r["type"] == "alert":
            ax.axvline(r["offset_s"], color="#ff9900", linestyle="--", linewidth=1.2, zorder=2)
            ax.text(
                r["offset_s"],
                1.02,
                "⚠ " + r["what"][:48],
                transform=band,
                fontsize=7,
                rotation=20,
                ha="left",
                va="bottom",
                color="#b36b00",
            )
        elif r["type"] == "kill":
            ax.axvline(r["offset_s"], color="#d62728", linewidth=2.5, zorder=2, alpha=0.8)
            ax.text(
                r["offset_s"],
                -0.08,
                "KILL",
                transform=band,
                color="#d62728",
                fontsize=9,
                weight="bold",
                ha="center",
                va="top",
            )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(-0.8, max(1, len(lanes)) - 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the session started", labelpad=14)
    ax.set_title(f"agentwatch replay: {rec.root_session_id}", loc="left", pad=30)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=c, label=cap) for cap, c in _CAP_COLORS]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
