"""Worker memory over a long run: RSS of a real worker fed simulated traffic at half its maximum.

    python -m bench.soak [--warmup 20] [--minutes 10] [--rate EVENTS_PER_S] [--idle-ttl 120]
                         [--ended-ttl 60] [--tombstone-ttl 120] [--every 5] [--rss-every 1]
                         [--heap-every 15] [--baseline CHECKOUT] [--out bench/results]
                         [--repeat N]
    python -m bench.soak --pool RUN1/soak.json RUN2/soak.json ...

An ``agentwatch worker`` (every default detector, no event store) runs on the embedded Tansu
broker. Unless ``--rate`` is given, its maximum rate is measured first, in two steps, each by a
worker of its own consumer group on its own topic: it drains ``--probe-events`` simulated
events, as ``bench.throughput`` does; then it is fed live traffic at half that drain rate for
``--live-probe-s`` seconds, and its CPU per event there gives the maximum, the events/s a
whole core of it reads on live traffic (:func:`probe_live_rate`: about half the drain rate
on these machines). Then a
fresh worker is fed live simulated traffic (six agent types, 5% attacks, event times on the
wall clock, so sessions end, go idle and are evicted as in production) at half that maximum
by a producer in its own process, for ``--warmup`` + ``--minutes``. Every ``--every`` seconds the
worker's resident memory (``/proc/<pid>/status`` VmRSS, or psutil when installed), its CPU
time, the events sent and those it is done with, and the root sessions it holds are sampled,
with the broker's CPU time and RSS: Tansu keeps every record in memory and reads more slowly as
its topics grow, so over a long run the worker's lag (and what it holds in flight) can grow
because the broker slowed, not the worker.

Reported: a table (one row a minute), a PNG chart of RSS and live sessions over time
(``bench/results/soak.png``), ``bench/results/soak.json``, and the slope of RSS over the
``--minutes`` judged after the warm-up (least squares over RSS read every ``--rss-every``
second, MiB per minute): **flat** when they grow by less than ``--tolerance`` (default 2%) of
their mean RSS. ``--warmup 0`` judges the second half of ``--minutes`` instead. With it, the
95% interval of that growth from the scatter of the window's one-minute means, and whether the
run can tell at all (:func:`verdict`): RSS swings by 10-25 MiB within seconds, and one
10-minute run does not always separate a slope of 1 MiB/min from none.

Why a warm-up, and why 20 minutes: what the worker holds is at its level within ~3 minutes at
these TTLs (live sessions, tombstones, the bounded caches; the object counts of the memory
probe are flat from then on), but its RSS is what its allocators hold, and they keep their
peak: Python's small-object allocator gives an arena back only when every object in it is gone,
and glibc its heap only from the top, so RSS follows the busiest moment so far (the most live
sessions at once, a large checkpoint or fetch in flight). New highs come less and less often:
in 30-minute runs (``docs/memory.md``, eighth and ninth rounds) most of the rise is over by
minute 20, and what remains comes when the worker catches up after the embedded broker slowed.
A judged window that starts earlier measures the allocators' warm-up, not whether the worker
keeps growing; the table shows the warm-up's rows dimmed and the line under it its growth, so
it is not hidden.

Memory that is still filling a bound (sessions in the idle window, tombstones of ended
sessions) shows as growth: the table's live-session column says whether that is the case. That
is why the soak runs the worker with shorter TTLs than a production worker's: ``--idle-ttl``
120 s for sessions that stop without an end event, ``--ended-ttl`` 60 s for ended ones,
``--tombstone-ttl`` 120 s for what is kept of them after eviction (the defaults are 3,600 s,
300 s and 3,600 s). Memory can only be flat once sessions and tombstones leave as fast as they
come, which with the production TTLs takes over an hour, not ten minutes. ``--idle-ttl 3600
--ended-ttl 300 --tombstone-ttl 3600`` runs it with the production values.

RSS alone does not say whether the worker *holds* more, or whether its allocators keep
what it freed: Python's small-object allocator gives an arena back only when all of it is
free, glibc its heap only from the top (or at a trim). So the soak also turns on the
worker's memory probe (``monitor.memtrace``, every ``--heap-every`` seconds, 15 by default;
0 turns it off) and reports the judged window's slope of the **heap in use** (bytes in live
Python small objects plus glibc's bytes in use and mmapped: what the worker holds) next to
that of what the **allocators hold** (pymalloc's arenas and glibc's heap, free parts
included). A worker that leaks shows the heap in use rising; a flat heap in use under rising
RSS is the allocators keeping a peak.

To see more, set ``AGENTWATCH_MEMPROBE=<file>`` (and optionally
``AGENTWATCH_MEMPROBE_OBJECTS=1``, ``AGENTWATCH_MEMPROBE_GARBAGE=1``,
``AGENTWATCH_MEMPROBE_EVERY_S``) in the soak's environment: the worker inherits it and
appends reports to that file instead (``monitor.memtrace``).

One run's interval often spans the tolerance on these machines (docs/memory.md, eleventh
round). ``--repeat N`` runs N soaks one after the other (in ``OUT/run-K``, every one at the
first one's rate) and judges them together; ``--pool A/soak.json B/soak.json ...`` does the
same for runs made earlier (:func:`pooled_verdict`: one slope for all, each run at its own
level; runs that fell behind left out; ``OUT/soak-pool.json``). Pool runs of one code at one
rate on one machine.

A sample whose metrics scrape times out (the worker's event loop busy for seconds on a loaded
machine) is skipped and counted (``missed_samples``), instead of ending the run.

A worker that fell behind the load (less than 95% of what was sent read at the end) is
reported as such: on a busy machine half the measured maximum may still be too much, and then
the verdict says little.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bench.workers import (
    Worker,
    cpu_seconds,
    fill,
    measure_drain,
    metric,
    scrape,
    simulated_events,
    start_load,
)
from bench.workers import start_worker as start_bench_worker
from monitor.broker import EmbeddedBroker
from monitor.processes import stop_process
from monitor.settings import Settings
from monitor.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (psutil if installed, else ``/proc``)."""
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mx) * (v - my) for t, v in points) / var


def judged_window(
    rows: list[dict[str, float]], start_s: float | None, end_s: float | None = None
) -> list[dict[str, float]]:
    """The rows (samples or probe reports) a verdict reads: from ``start_s`` (the end of the
    warm-up), or from half way when it is None, to ``end_s`` (the planned end) or the last."""
    if not rows:
        return []
    end = rows[-1]["t"] if end_s is None else min(rows[-1]["t"], end_s)
    begin = end / 2 if start_s is None else start_s
    return [r for r in rows if begin <= r["t"] <= end]


def block_means(
    points: list[tuple[float, float]], block_s: float = 60.0
) -> list[tuple[float, float]]:
    """The (mean time, mean value) of each consecutive ``block_s`` block of (seconds, value)
    points, leaving out a block with under half the readings of the fullest (a stub at an
    end)."""
    if not points:
        return []
    t0 = points[0][0]
    blocks: dict[int, list[tuple[float, float]]] = {}
    for t, v in points:
        blocks.setdefault(int((t - t0) // block_s), []).append((t, v))
    fullest = max(map(len, blocks.values()))
    return [
        (sum(t for t, _ in b) / len(b), sum(v for _, v in b) / len(b))
        for b in blocks.values()
        if len(b) * 2 >= fullest
    ]


def slope_interval(
    points: list[tuple[float, float]], block_s: float = 60.0, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The least-squares slope (per minute) of the means of consecutive ``block_s`` blocks of
    (seconds, value) points, and the half-width of its ``confidence`` interval (Student's t),
    or None with fewer than three blocks.

    Block means, not the points: RSS moves in cycles of seconds (a checkpoint every 5 s that
    maps and unmaps buffers of a MiB and more, a heap trim every 30 s), so neighbouring
    samples are not independent and an interval from the raw points would be far too narrow.
    One-minute means are nearly independent of each other; their scatter around the line is
    the run's noise."""
    from scipy import stats

    means = block_means(points, block_s)
    if len(means) < 3:
        return None
    fit = stats.linregress([t for t, _ in means], [v for _, v in means])
    half = float(stats.t.ppf((1 + confidence) / 2, len(means) - 2)) * float(fit.stderr)
    return 60.0 * float(fit.slope), 60.0 * half


def verdict(
    samples: list[dict[str, float]],
    tolerance: float,
    planned_s: float | None = None,
    start_s: float | None = None,
    rss: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Slope of RSS (MiB/min) over the judged window, whether that window stayed flat, and
    whether the worker kept up with the load (if not, what it held was not what the rate
    asks for, and the verdict says little). The window is from ``start_s`` (the end of the
    warm-up) to the end, or the second half of the run when ``start_s`` is None.

    Samples after ``planned_s`` (the run's planned length) are left out of the slope: the
    loop's last sample lands a second or two past it, just after the worker's full collection
    (every ``AGENTWATCH_GC_FULL_INTERVAL_S``, 600 s, the length of a default soak), which
    trims the heap. A trim hands back free pages that glibc touches again within seconds, so
    that one sample read 20-35 MiB below the ones before it in every 10-minute run, and
    pulled the slope down by 0.5-0.9 MiB/min.

    ``rss`` (``t`` and ``rss`` only) are RSS readings taken more often than the scraped
    samples, and judged instead of them when given: with one reading every 5 s, in step with
    the worker's 5 s checkpoints, the same window's slope read +0.95 MiB/min from those
    samples and -0.70 from the memory probe's 15 s readings (docs/memory.md, eleventh round):
    the worker checkpoints every 5 s, mapping and unmapping buffers of a MiB and more, and a
    reading every 5 s can keep landing on the same phase of that cycle for minutes.

    Besides the verdict (the slope's growth over the window against ``tolerance`` of its
    mean), ``growth_interval_pct`` is the 95% interval of that growth from the scatter of the
    window's one-minute means (:func:`slope_interval`), and ``decided`` says whether the run
    can tell: ``flat`` when the whole interval is under the tolerance, ``growing`` when it
    is all over it, ``within noise`` when it spans it."""
    last = samples[-1]
    judged = judged_window(rss or samples, start_s, planned_s)
    if len(judged) < 2:
        raise ValueError(f"no samples to judge from {start_s or 0:.0f} s to {planned_s or 0:.0f} s")
    points = [(s["t"], s["rss"] / MIB) for s in judged]
    slope = slope_per_minute(points)
    mean = sum(v for _, v in points) / len(points)
    minutes = (judged[-1]["t"] - judged[0]["t"]) / 60.0
    growth = slope * minutes
    out: dict[str, Any] = {
        "slope_mib_per_min": round(slope, 3),
        "window_growth_mib": round(growth, 2),
        "window_mean_mib": round(mean, 1),
        "tolerance": tolerance,
        "flat": growth <= tolerance * mean,
        "kept_up": last.get("done", 0.0) >= 0.95 * last.get("sent", 0.0),
        "lag_events": max(0, round(last.get("sent", 0.0) - last.get("done", 0.0))),
        "window_s": [round(judged[0]["t"], 1), round(judged[-1]["t"], 1)],
        "readings": len(judged),
    }
    interval = slope_interval(points)
    if interval is not None:
        lo, hi = (100 * (interval[0] + k * interval[1]) * minutes / mean for k in (-1, 1))
        out["growth_interval_pct"] = [round(lo, 2), round(hi, 2)]
        top = 100 * tolerance
        out["decided"] = "flat" if hi <= top else "growing" if lo > top else "within noise"
    return out


def load_verdict(
    samples: list[dict[str, float]], start_s: float | None, end_s: float | None = None
) -> dict[str, float] | None:
    """How hard the worker worked over the judged window: its share of a core, its CPU per
    event, and the rate a whole core of it would read at that cost. A soak at half the
    worker's maximum should leave it about half a core. (Until the thirteenth round the
    maximum was a backlog's drain rate, and half of that cost a live worker 0.8-0.9 of a
    core: docs/memory.md, twelfth round.)"""
    judged = [s for s in judged_window(samples, start_s, end_s) if "cpu" in s]
    if len(judged) < 2:
        return None
    first, last = judged[0], judged[-1]
    seconds = last["t"] - first["t"]
    done = last["done"] - first["done"]
    cpu = last["cpu"] - first["cpu"]
    if seconds <= 0 or done <= 0:
        return None
    return {
        "core_share": round(cpu / seconds, 3),
        "cpu_per_event_us": round(1e6 * cpu / done, 1),
        "events_per_core_s": round(done / cpu) if cpu > 0 else 0,
        "done_per_s": round(done / seconds),
    }


def judged_points(result: dict[str, Any]) -> list[tuple[float, float]]:
    """A soak result's judged readings as (seconds, MiB): its frequent RSS readings when it has
    them, else its scraped samples, inside its verdict's window."""
    lo, hi = result["verdict"]["window_s"]  # rounded to 0.1 s
    if result.get("rss"):
        points = [(float(t), float(mib)) for t, mib in result["rss"]]
    else:
        points = [(s["t"], s["rss"] / MIB) for s in result["samples"]]
    return [(t, v) for t, v in points if lo - 0.05 <= t <= hi + 0.05]


def pooled_verdict(
    results: list[dict[str, Any]], tolerance: float | None = None, confidence: float = 0.95
) -> dict[str, Any]:
    """Several soaks of one code on one machine, judged together: one run's interval spans the
    tolerance on these machines (docs/memory.md, eleventh round), and pooling narrows it.

    Each run's judged window gives its one-minute means (:func:`block_means`, as in
    :func:`slope_interval`). The pooled slope is the common slope of those means with an
    intercept of each run's own (runs differ in level: what their allocators reached in the
    warm-up), and its interval Student's t on the residuals (``df`` = means - runs - 1). That
    assumes the runs share one slope; an F test of separate slopes against the common one
    checks it (``p_slopes_differ``). When they differ (p < 0.05), the interval that counts is
    the one from the spread of the runs' own slopes (t with runs - 1 degrees of freedom),
    reported either way as ``between_runs_interval_pct``. A run that fell behind the load is
    shown and left out. Growth is over the mean window's length, in % of the pooled mean RSS,
    against ``tolerance`` (the runs' own by default); ``decided`` as in :func:`verdict`."""
    from scipy import stats

    tol = tolerance if tolerance is not None else float(results[0]["verdict"]["tolerance"])
    runs: list[dict[str, Any]] = []
    used: list[list[tuple[float, float]]] = []
    minutes: list[float] = []
    for r in results:
        v = r["verdict"]
        points = judged_points(r)
        means = block_means(points)
        own = slope_interval(points)  # None with fewer than 3 means
        length = (v["window_s"][1] - v["window_s"][0]) / 60  # minutes
        row: dict[str, Any] = {
            "when": r.get("when"),
            "rate": r["rate"],
            "slope_mib_per_min": v["slope_mib_per_min"],
            "growth_pct": round(100 * v["window_growth_mib"] / v["window_mean_mib"], 2),
            # from the points, so that runs written before the bench gave it have it too
            "interval_pct": (
                [
                    round(100 * (own[0] + k * own[1]) * length / v["window_mean_mib"], 2)
                    for k in (-1, 1)
                ]
                if own
                else None
            ),
            "mean_mib": v["window_mean_mib"],
            "lag_events": v["lag_events"],
            "means": len(means),
        }
        load = load_verdict(r.get("samples") or [], v["window_s"][0], v["window_s"][1])
        if load is not None:
            row["core_share"] = load["core_share"]
        if not v["kept_up"]:
            row["left_out"] = "fell behind the load"
        elif len(means) < 3:
            row["left_out"] = "fewer than 3 one-minute means"
        else:
            used.append(means)
            minutes.append(length)
        runs.append(row)
    out: dict[str, Any] = {"runs": runs, "tolerance": tol, "pooled_runs": len(used)}
    if len(used) < 2:
        out["decided"] = None
        return out
    # each run's means about its own mean: the common slope and the residuals around it
    centred = []
    for means in used:
        mt = sum(t for t, _ in means) / len(means)
        mv = sum(v for _, v in means) / len(means)
        centred.append([(t - mt, v - mv) for t, v in means])
    sxx = sum(t * t for run in centred for t, _ in run)
    slope = sum(t * v for run in centred for t, v in run) / sxx
    resid = [[v - slope * t for t, v in run] for run in centred]
    n, k = sum(map(len, used)), len(used)
    sse = sum(e * e for run in resid for e in run)
    df = n - k - 1
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * (sse / df / sxx) ** 0.5
    # separate slopes, one a run: do the runs disagree by more than their noise?
    slopes = []
    sse_own = 0.0
    for run in centred:
        rxx = sum(t * t for t, _ in run)
        rxy = sum(t * v for t, v in run)
        slopes.append(rxy / rxx)
        sse_own += sum(v * v for _, v in run) - rxy * rxy / rxx
    df_own = n - 2 * k
    if df_own > 0 and sse_own > 0:
        f = ((sse - sse_own) / (k - 1)) / (sse_own / df_own)
        p_differ = float(stats.f.sf(f, k - 1, df_own))
    else:
        p_differ = 1.0
    mean_own = sum(slopes) / k
    sd_own = (sum((b - mean_own) ** 2 for b in slopes) / (k - 1)) ** 0.5
    half_between = float(stats.t.ppf((1 + confidence) / 2, k - 1)) * sd_own / k**0.5
    lag1 = (
        sum(a * b for run in resid for a, b in zip(run, run[1:], strict=False)) / sse
        if sse > 0
        else 0.0
    )
    mean_mib = sum(v for means in used for _, v in means) / n
    length = sum(minutes) / k

    def pct(per_min: float) -> float:
        return round(100 * 60 * per_min * length / mean_mib, 2)

    common = [pct(slope - half), pct(slope + half)]
    between = [pct(mean_own - half_between), pct(mean_own + half_between)]
    lo, hi = between if p_differ < 0.05 else common
    top = 100 * tol
    out.update(
        slope_mib_per_min=round(60 * slope, 3),
        growth_pct=pct(slope),
        growth_interval_pct=common,
        between_runs_interval_pct=between,
        p_slopes_differ=round(p_differ, 4),
        residual_lag1=round(lag1, 3),
        means=n,
        df=df,
        window_minutes=round(length, 2),
        mean_mib=round(mean_mib, 1),
        interval_used="between runs" if p_differ < 0.05 else "common slope",
        decided="flat" if hi <= top else "growing" if lo > top else "within noise",
    )
    return out


def print_pool(console: Console, pool: dict[str, Any]) -> None:
    table = Table(
        title="RSS growth over each judged window (% of its mean), and over the runs pooled",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for col in ("run", "ended", "rate/s", "core", "MiB/min", "growth", "95% CI", ""):
        table.add_column(
            col,
            justify="left" if col in ("ended", "") else "right",
            no_wrap=True,
            min_width=12 if not col else None,
        )
    for i, r in enumerate(pool["runs"], 1):
        lo_hi = r["interval_pct"]
        table.add_row(
            str(i),
            (r["when"] or "-")[11:16],
            f"{r['rate']:,.0f}",
            f"{r['core_share']:.2f}" if "core_share" in r else "-",
            f"{r['slope_mib_per_min']:+.2f}",
            f"{r['growth_pct']:+.2f}%",
            f"{lo_hi[0]:+.1f}%..{lo_hi[1]:+.1f}%" if lo_hi else "-",
            "left out" if "left_out" in r else "",
            style="dim" if "left_out" in r else None,
        )
    if pool.get("decided"):
        lo, hi = (
            pool["between_runs_interval_pct"]
            if pool["interval_used"] == "between runs"
            else pool["growth_interval_pct"]
        )
        style = {"flat": "green", "growing": "red"}.get(pool["decided"], "yellow")
        table.add_section()
        table.add_row(
            "all",
            f"{pool['pooled_runs']} runs",
            "",
            "",
            f"{pool['slope_mib_per_min']:+.2f}",
            f"{pool['growth_pct']:+.2f}%",
            f"{lo:+.1f}%..{hi:+.1f}%",
            f"[{style}]{pool['decided']}[/]",
        )
    console.print(table)
    for i, r in enumerate(pool["runs"], 1):
        if "left_out" in r:
            console.print(f"run {i} left out: {r['left_out']} ({r['lag_events']:,} events unread)")
    if not pool.get("decided"):
        console.print("[yellow]fewer than 2 runs kept up with the load: nothing to pool[/]")
        return
    rates = [r["rate"] for r in pool["runs"] if "left_out" not in r]
    console.print(
        f"pooled: {pool['means']} one-minute means of {pool['pooled_runs']} runs, "
        f"{pool['window_minutes']:g}-minute windows, tolerance {pool['tolerance']:.0%}; "
        f"do the runs' slopes differ? p = {pool['p_slopes_differ']:.2f} "
        f"({pool['interval_used']} interval used; the other: "
        + (
            "{:+.1f}% to {:+.1f}%".format(*pool["growth_interval_pct"])
            if pool["interval_used"] == "between runs"
            else "{:+.1f}% to {:+.1f}%".format(*pool["between_runs_interval_pct"])
        )
        + f"); residuals' lag-1 correlation {pool['residual_lag1']:+.2f}"
    )
    if max(rates) > 1.1 * min(rates):
        console.print(
            f"[yellow]the runs' rates differ by more than 10% ({min(rates):,.0f}-"
            f"{max(rates):,.0f}/s): pool runs of one code at one rate on one machine[/]"
        )


#: the memory probe's report lines the soak reads (``monitor.memtrace.Probe.report``)
_PROBE_T = re.compile(r"^=== t=(\d+)s rss=([\d.]+) MiB", re.M)
_PROBE_C = re.compile(
    r"^malloc: in use ([\d.]+) MiB, free kept ([\d.]+) MiB, mmapped ([\d.]+) MiB", re.M
)
_PROBE_PY = re.compile(r"^pymalloc: (\d+) arenas \(\d+ at most\), in use ([\d.]+) MiB", re.M)
_PROBE_CHURN = re.compile(r"(\d+) mapped and (\d+) unmapped so far")
_PROBE_SIZES = re.compile(r"^pymalloc sizes \([^)]*\): (.*)$", re.M)
#: pymalloc's pool size (Python 3.10 and later on 64-bit: 16 KiB)
POOL_MIB = 16 / 1024


def read_probe(path: Path) -> list[dict[str, float]]:
    """The worker's heap reports (MiB): ``in_use`` = Python small objects + glibc's bytes in
    use and mmapped; ``held`` = pymalloc's arenas (1 MiB each) + glibc's heap and mmapped."""
    if not path.exists():
        return []
    out: list[dict[str, float]] = []
    for chunk in path.read_text(errors="replace").split("=== ")[1:]:
        t, c, py = _PROBE_T.match("=== " + chunk), _PROBE_C.search(chunk), _PROBE_PY.search(chunk)
        if t is None or c is None or py is None:
            continue  # a report without allocator figures (no glibc, no pymalloc)
        if out and float(t.group(1)) < out[-1]["t"]:
            out = []  # another worker wrote to the file before (a probe named in the env)
        c_used, c_free, mmapped = (float(x) for x in c.groups())
        arenas, py_used = int(py.group(1)), float(py.group(2))
        report = {
            "t": float(t.group(1)),
            "rss": float(t.group(2)),
            "in_use": round(py_used + c_used + mmapped, 1),
            "held": round(arenas + c_used + c_free + mmapped, 1),
            "pymalloc_in_use": py_used,
            "pymalloc_arenas": float(arenas),
            "c_in_use": c_used,
            "c_free": c_free,
        }
        churn = _PROBE_CHURN.search(chunk)
        if churn is not None:
            report["arenas_mapped"], report["arenas_unmapped"] = map(float, churn.groups())
        sizes = _PROBE_SIZES.search(chunk)
        for cell in sizes.group(1).split() if sizes is not None else ():
            size, counts = cell.split(":")
            pools, used, _free = (int(x) for x in counts.split("/"))
            report[f"pools_{size}"] = pools * POOL_MIB
            report[f"used_{size}"] = used * int(size) / MIB
        out.append(report)
    return out


def size_verdict(
    reports: list[dict[str, float]],
    start_s: float | None = None,
    end_s: float | None = None,
    top: int = 6,
) -> dict[str, Any] | None:
    """Where pymalloc's pools grew over the judged window, by block size (pools serve one
    size each): the ``top`` sizes by the slope of their pools (MiB/min), each with the slope
    of the bytes its live blocks hold. Pools growing faster than their blocks in use are
    fragmentation at that size. Also the arenas mapped and unmapped over the window (churn).
    None when the reports have no sizes (an older worker's probe)."""
    judged = judged_window(reports, start_s, end_s)
    sizes = sorted({int(k[6:]) for r in judged for k in r if k.startswith("pools_")})
    if len(judged) < 2 or not sizes:
        return None
    rows = []
    for size in sizes:
        pools = [(r["t"], r.get(f"pools_{size}", 0.0)) for r in judged]
        used = [(r["t"], r.get(f"used_{size}", 0.0)) for r in judged]
        rows.append(
            {
                "size": size,
                "pools_mib": round(pools[-1][1], 2),
                "pools_slope_mib_per_min": round(slope_per_minute(pools), 3),
                "used_slope_mib_per_min": round(slope_per_minute(used), 3),
            }
        )
    rows.sort(key=lambda row: -row["pools_slope_mib_per_min"])
    first, last = judged[0], judged[-1]
    return {
        "sizes": rows[:top],
        "pools_slope_mib_per_min": round(sum(r["pools_slope_mib_per_min"] for r in rows), 3),
        "arenas_mapped": last.get("arenas_mapped", 0.0) - first.get("arenas_mapped", 0.0),
        "arenas_unmapped": last.get("arenas_unmapped", 0.0) - first.get("arenas_unmapped", 0.0),
    }


def heap_verdict(
    reports: list[dict[str, float]], start_s: float | None = None, end_s: float | None = None
) -> dict[str, Any] | None:
    """Slopes (MiB/min) and growth (% of the window's mean) of what the worker holds and of
    what its allocators hold, from the probe's reports, over the same window as
    :func:`verdict` (from ``start_s`` to ``end_s``; by default the second half)."""
    if end_s is not None:
        reports = [r for r in reports if r["t"] <= end_s]
    if len(reports) < 4:
        return None
    judged = judged_window(reports, start_s)
    if len(judged) < 2:
        return None
    minutes = (judged[-1]["t"] - judged[0]["t"]) / 60.0
    out: dict[str, Any] = {"reports": len(reports), "judged": len(judged)}
    for name in ("in_use", "held", "pymalloc_in_use", "pymalloc_arenas", "c_in_use", "c_free"):
        slope = slope_per_minute([(r["t"], r[name]) for r in judged])
        mean = sum(r[name] for r in judged) / len(judged)
        out[name] = {
            "slope_mib_per_min": round(slope, 3),
            "growth_pct": round(100 * slope * minutes / mean, 2) if mean else 0.0,
            "mean_mib": round(mean, 1),
        }
    return out


def probe_max_rate(
    broker: EmbeddedBroker, base: Settings, events: int, work: Path, cwd: Path | None = None
) -> float:
    """Events/s one worker drains a backlog of simulated traffic at (its own topic)."""
    settings = base.model_copy(
        update={"app_id": "soak-probe", "topic_actions": "soak.probe", "datadir": work / "probe"}
    )
    ensure_topics(broker.bootstrap, settings)
    fill(broker.bootstrap, settings.topic_actions, simulated_events(events, seed=3))
    worker = start_bench_worker(settings, work / "probe.log", cwd=cwd)
    try:
        return measure_drain([worker], events).events_per_s
    finally:
        worker.stop()


def probe_live_rate(
    broker: EmbeddedBroker,
    base: Settings,
    rate: float,
    seconds: float,
    work: Path,
    extra: dict[str, str],
    cwd: Path | None = None,
    every: float = 5.0,
) -> dict[str, Any]:
    """What one worker sustains on live traffic: a worker of its own consumer group is fed
    live simulated traffic at ``rate`` for ``seconds`` (its own topic, the soak's TTLs), and
    its CPU per event over the last two thirds gives the events/s a whole core of it reads
    (:func:`live_max_rate`).

    A backlog's drain (:func:`probe_max_rate`) is the wrong maximum for a soak: the same
    worker spent 214-328 µs of CPU an event on live traffic against 140 draining
    (docs/memory.md, twelfth round). Live traffic spreads a session's events over minutes:
    more sessions are live at once, each is checkpointed again every 5 s it has an event,
    and evicted on the clock; a profile puts most of the difference in scoring itself
    (docs/performance.md, thirteenth round).

    The soak probes at half the drain rate, which live traffic makes close to (or over) what
    the worker sustains: part of a live worker's CPU goes by the second, not by the event
    (fetches every few ms once caught up, the clock's ticks, metrics), and near its maximum
    that part is spread over the most events, as it is at the maximum itself. At a rate well
    under it the same part makes each event look dearer, and the maximum come out low."""
    settings = base.model_copy(
        update={"app_id": "soak-live", "topic_actions": "soak.live", "datadir": work / "live"}
    )
    ensure_topics(broker.bootstrap, settings)
    worker = start_bench_worker(settings, work / "live.log", extra=extra, cwd=cwd)
    load = start_load(broker.bootstrap, settings.topic_actions, rate, work / "live-load.log", 2.0)
    samples: list[dict[str, float]] = []
    try:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the worker exited; see {worker.log}")
            try:
                samples.append(sample(worker, t0, work / "live-load.log"))
            except OSError:  # a scrape that timed out: the next one will do
                pass
            time.sleep(max(0.0, min(every, seconds - elapsed)))
        samples.append(sample(worker, t0, work / "live-load.log"))
    finally:
        stop_process(load, 10)
        worker.stop()
    return live_max_rate(samples, rate, seconds)


def live_max_rate(samples: list[dict[str, float]], rate: float, seconds: float) -> dict[str, Any]:
    """The live probe's result from its samples: the worker's load over the last two thirds
    of ``seconds`` (the first third fills its sessions and caches), and ``max_rate``, the
    events/s a whole core of it would read at that CPU per event. Raises when the samples
    show no events done (nothing to divide by)."""
    load = load_verdict(samples, seconds / 3)  # to the last sample, taken at the end
    if load is None or load["events_per_core_s"] <= 0:
        raise RuntimeError("the live probe's worker read nothing: see its log")
    max_rate = load["events_per_core_s"]
    return {"rate": round(rate, 1), "seconds": seconds, **load, "max_rate": max_rate}


def sent_so_far(log: Path) -> float:
    """Events the load generator has sent (its last ``LOAD <sent> <seconds>`` line)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("LOAD ")]
    return float(lines[-1].split()[1]) if lines else 0.0


def sample(
    worker: Worker, t0: float, load_log: Path, broker_pid: int | None = None
) -> dict[str, float]:
    """One sample of the worker (and, with ``broker_pid``, of the broker: its CPU time and
    RSS, to tell a worker that slows down from a broker that does)."""
    text = scrape(worker.url)
    out = {
        "t": round(time.monotonic() - t0, 1),
        "rss": rss_bytes(worker.proc.pid),
        "cpu": cpu_seconds(worker.proc.pid),
        "sent": sent_so_far(load_log),
        "done": metric(text, "agentwatch_events_consumed_total")
        + metric(text, "agentwatch_events_rejected_total"),
        "sessions": metric(text, "agentwatch_active_sessions"),
    }
    if broker_pid is not None:
        out["broker_cpu"] = cpu_seconds(broker_pid)
        out["broker_rss"] = rss_bytes(broker_pid)
    return out


def chart(samples: list[dict[str, float]], result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t"] / 60 for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(minutes, [s["rss"] / MIB for s in samples], color="tab:blue", label="worker RSS")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)", color="tab:blue")
    ax.set_ylim(bottom=0)
    v = result["verdict"]
    ax.axvline(v["window_s"][0] / 60, color="grey", linestyle=":", linewidth=1)
    if result.get("warmup_minutes"):
        ax.axvspan(0, result["warmup_minutes"], color="grey", alpha=0.12)  # the warm-up
    live = ax.twinx()
    live.plot(minutes, [s["sessions"] for s in samples], color="tab:orange", alpha=0.7)
    live.set_ylabel("live root sessions", color="tab:orange")
    live.set_ylim(bottom=0)
    ax.set_title(
        f"agentwatch worker at {result['rate']:,.0f} events/s "
        + ("(rate given)" if result["rate_given"] else f"(half of {result['max_rate']:,.0f})")
        + f": {window_label(result)} {v['slope_mib_per_min']:+.2f} MiB/min, "
        + ("flat" if v["flat"] else "NOT flat")
        + ("" if v["kept_up"] else f" (fell behind: {v['lag_events']:,} events unread)"),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def window_label(result: dict[str, Any]) -> str:
    """What the verdict judged: ``minutes 20-30`` after a warm-up, else ``second half``."""
    warm = result.get("warmup_minutes") or 0
    return f"minutes {warm:g}-{warm + result['minutes']:g}" if warm else "second half"


def print_table(console: Console, samples: list[dict[str, float]], result: dict[str, Any]) -> None:
    warm = result.get("warmup_minutes") or 0
    table = Table(
        title=f"worker RSS over {warm + result['minutes']:g} minutes at {result['rate']:,.0f}/s"
        + (f", the first {warm:g} a warm-up (dim)" if warm else "")
        + f" (TTLs: idle {result['idle_ttl_s']:g} s, ended {result['ended_ttl_s']:g} s, "
        f"tombstones {result['tombstone_ttl_s']:g} s)"
    )
    # events sent and done are in the JSON; the table shows the lag (sent - done), so that it
    # fits 80 columns with the broker's figures
    cols = ("min", "RSS MiB", "done/s", "lag", "worker CPU %", "live sessions",
            "broker CPU %", "broker RSS GiB")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    shown: list[dict[str, float]] = []
    for s in samples:
        if not shown or s["t"] - shown[-1]["t"] >= 60 or s is samples[-1]:
            prev = shown[-1] if shown else None
            rate = (s["done"] - prev["done"]) / (s["t"] - prev["t"]) if prev else 0.0
            cpu = 100 * (s["cpu"] - prev["cpu"]) / (s["t"] - prev["t"]) if prev else 0.0
            broker = (
                f"{100 * (s['broker_cpu'] - prev['broker_cpu']) / (s['t'] - prev['t']):.0f}"
                if prev and "broker_cpu" in s and "broker_cpu" in prev
                else "-"
            )
            table.add_row(
                f"{s['t'] / 60:.1f}",
                f"{s['rss'] / MIB:,.1f}",
                f"{rate:,.0f}" if prev else "-",
                f"{max(0.0, s['sent'] - s['done']):,.0f}",
                f"{cpu:.0f}" if prev else "-",
                f"{s['sessions']:,.0f}",
                broker,
                f"{s['broker_rss'] / 2**30:,.1f}" if "broker_rss" in s else "-",
                style="dim" if s["t"] < 60 * warm else None,
            )
            shown.append(s)
    console.print(table)
    v = result["verdict"]
    style = "green" if v["flat"] else "red"
    if warm:
        before = [s for s in samples if s["t"] < 60 * warm]
        if before:
            console.print(
                f"warm-up: RSS {before[0]['rss'] / MIB:,.0f} -> {before[-1]['rss'] / MIB:,.0f} "
                f"MiB over {warm:g} minutes (not judged)"
            )
    console.print(
        f"{window_label(result)}: {v['slope_mib_per_min']:+.3f} MiB/min, "
        f"{v['window_growth_mib']:+.1f} MiB on {v['window_mean_mib']:.0f} MiB: "
        f"[{style}]{'flat' if v['flat'] else 'NOT flat'}[/] (tolerance {v['tolerance']:.0%}; "
        f"{v.get('readings', 0):,} readings)"
    )
    if "growth_interval_pct" in v:
        lo, hi = v["growth_interval_pct"]
        tell = {
            "flat": "flat whatever the noise",
            "growing": "growing whatever the noise",
            "within noise": "this run cannot tell",
        }[v["decided"]]
        console.print(
            f"95% interval of that growth, from the scatter of its one-minute means: "
            f"{lo:+.1f}% to {hi:+.1f}% against {v['tolerance']:.0%}: {tell}"
        )
    load = result.get("worker_load")
    if load:
        console.print(
            f"worker over that window: {load['core_share']:.2f} of a core, "
            f"{load['cpu_per_event_us']:,.0f} µs of CPU per event (a whole core of it: "
            f"~{load['events_per_core_s']:,} events/s)"
        )
        if load["core_share"] > 0.7:
            console.print(
                f"[yellow]the worker used {load['core_share']:.0%} of a core: this rate is "
                "not half of what it sustains on live traffic (a busy machine, or a --rate "
                "too high; without --rate the live probe sets it)[/]"
            )
    if result.get("missed_samples"):
        console.print(
            f"[yellow]{result['missed_samples']} samples missed: the worker's /metrics did not "
            "answer in time (a busy machine)[/]"
        )
    heap = result.get("heap")
    if heap:
        used, held = heap["in_use"], heap["held"]
        console.print(
            f"heap in use (Python objects + C heap, {heap['reports']} probe reports): "
            f"{used['slope_mib_per_min']:+.3f} MiB/min ({used['growth_pct']:+.1f}% of "
            f"{used['mean_mib']:.0f} MiB); held by the allocators: "
            f"{held['slope_mib_per_min']:+.3f} MiB/min ({held['growth_pct']:+.1f}% of "
            f"{held['mean_mib']:.0f} MiB; pymalloc arenas "
            f"{heap['pymalloc_arenas']['slope_mib_per_min']:+.3f}, glibc free "
            f"{heap['c_free']['slope_mib_per_min']:+.3f})"
        )
    sizes = result.get("pymalloc_sizes")
    if sizes:
        console.print(
            f"pymalloc pools {sizes['pools_slope_mib_per_min']:+.3f} MiB/min "
            f"({sizes['arenas_mapped']:.0f} arenas mapped, {sizes['arenas_unmapped']:.0f} "
            "unmapped); the sizes whose pools grew most (pools / blocks in use, MiB/min): "
            + ", ".join(
                f"{r['size']} B {r['pools_slope_mib_per_min']:+.3f} / "
                f"{r['used_slope_mib_per_min']:+.3f}"
                for r in sizes["sizes"]
            )
        )
    if not v["kept_up"]:
        console.print(
            f"[red]the worker fell behind the load ({v['lag_events']:,} events unread at the "
            "end): a busy machine or a rate above half the maximum; the verdict says little[/]"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="minutes judged, after the warm-up")
    ap.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="minutes of load before the judged ones (0: judge the second half of --minutes)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s (default: half of what the worker sustains on live traffic, probed)",
    )
    ap.add_argument(
        "--probe-events", type=int, default=20_000, help="events of the drain probe's backlog"
    )
    ap.add_argument(
        "--live-probe-s",
        type=float,
        default=90.0,
        help="seconds of the live probe, which sets the default rate (without --rate)",
    )
    ap.add_argument(
        "--every", type=float, default=5.0, help="seconds between samples (a /metrics scrape)"
    )
    ap.add_argument(
        "--rss-every",
        type=float,
        default=1.0,
        help="seconds between RSS readings, which the verdict judges (0: the samples')",
    )
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument(
        "--idle-ttl", type=float, default=120.0, help="AGENTWATCH_IDLE_TTL_S of the worker (s)"
    )
    ap.add_argument(
        "--ended-ttl", type=float, default=60.0, help="AGENTWATCH_ENDED_TTL_S of the worker (s)"
    )
    ap.add_argument(
        "--ended-min-idle",
        type=float,
        default=12.0,
        help="AGENTWATCH_ENDED_MIN_IDLE_S of the worker (s; the default's ratio to the ended TTL)",
    )
    ap.add_argument(
        "--tombstone-ttl",
        type=float,
        default=120.0,
        help="AGENTWATCH_TOMBSTONE_TTL_S of the worker (s)",
    )
    ap.add_argument(
        "--heap-every",
        type=float,
        default=15.0,
        help="seconds between the worker's heap reports (monitor.memtrace; 0: off)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="run another checkout's worker (its monitor, detectors, schemas) under this "
        "harness, e.g. main's, to compare in the same conditions",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="soaks to run one after the other (each in OUT/run-K, all at the first's rate), "
        "then judged together (OUT/soak-pool.json)",
    )
    ap.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        metavar="SOAK_JSON",
        help="judge earlier soaks' soak.json together instead of running one",
    )
    args = ap.parse_args(argv)
    console = Console()
    if args.pool or args.repeat > 1:
        if args.pool:
            results = [json.loads(path.read_text()) for path in args.pool]
        else:
            results = []
            out = args.out
            for k in range(1, args.repeat + 1):
                console.rule(f"soak {k} of {args.repeat}")
                args.out = out / f"run-{k}"
                results.append(soak_once(args, console))
                args.rate = results[0]["rate"]  # one load for every run
            args.out = out
        pool = pooled_verdict(results, tolerance=args.tolerance)
        print_pool(console, pool)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak-pool.json").write_text(json.dumps(pool, indent=2) + "\n")
        console.print(f"wrote {args.out / 'soak-pool.json'}")
        return pool
    return soak_once(args, console)


def soak_once(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """One soak: the worker, the load, the samples; prints its table and writes its JSON and
    chart to ``args.out``."""
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "soak-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    samples: list[dict[str, float]] = []
    rss: list[dict[str, float]] = []  # RSS alone, every --rss-every seconds
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        base = Settings.from_env(
            {}, profile="embedded", broker=broker.url, topic_partitions=4,
            datadir=work / "data", app_id="soak", topic_actions="soak.actions",
        )  # fmt: skip
        ttls = {
            "AGENTWATCH_IDLE_TTL_S": str(args.idle_ttl),
            "AGENTWATCH_ENDED_TTL_S": str(args.ended_ttl),
            "AGENTWATCH_ENDED_MIN_IDLE_S": str(args.ended_min_idle),
            "AGENTWATCH_TOMBSTONE_TTL_S": str(args.tombstone_ttl),
        }
        drain_rate = live = None
        if args.rate is None:
            with console.status(f"measuring the worker's drain rate ({args.probe_events:,})"):
                drain_rate = probe_max_rate(broker, base, args.probe_events, work, args.baseline)
            console.print(f"a backlog's drain: {drain_rate:,.0f} events/s")
            with console.status(
                f"measuring what it sustains on live traffic ({args.live_probe_s:g} s at "
                f"{drain_rate / 2:,.0f} events/s, half the drain)"
            ):
                live = probe_live_rate(
                    broker, base, drain_rate / 2, args.live_probe_s, work, dict(ttls),
                    args.baseline,
                )  # fmt: skip
            console.print(
                f"live traffic: {live['cpu_per_event_us']:,.0f} µs of CPU an event, so a whole "
                f"core reads ~{live['max_rate']:,} events/s (the maximum the soak runs at half of)"
            )
        rate = args.rate if args.rate is not None else live["max_rate"] / 2  # type: ignore[index]
        ensure_topics(broker.bootstrap, base)
        probe_file = Path(os.environ.get("AGENTWATCH_MEMPROBE") or work / "memprobe.txt")
        if args.heap_every > 0 and not os.environ.get("AGENTWATCH_MEMPROBE"):
            ttls["AGENTWATCH_MEMPROBE"] = str(probe_file)
            ttls["AGENTWATCH_MEMPROBE_EVERY_S"] = str(args.heap_every)
        worker = start_bench_worker(base, work / "worker.log", extra=ttls, cwd=args.baseline)
        load = start_load(broker.bootstrap, base.topic_actions, rate, work / "load.log", 2.0)
        broker_pid = broker.proc.pid if broker.proc is not None else None
        try:
            t0 = time.monotonic()
            total_s = 60 * (args.warmup + args.minutes)
            end = t0 + total_s
            missed = 0  # samples lost to a metrics scrape that timed out
            columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console) as bar:
                task = bar.add_task(f"soak at {rate:,.0f} events/s", total=total_s)
                while True:
                    if worker.proc.poll() is not None:
                        raise RuntimeError(f"the worker exited; see {worker.log}")
                    if load.poll() is not None:
                        raise RuntimeError(f"the load generator exited; see {work / 'load.log'}")
                    try:
                        s = sample(worker, t0, work / "load.log", broker_pid)
                    except OSError:  # /metrics slower than its timeout: a busy machine
                        missed += 1
                    else:
                        samples.append(s)
                        bar.update(
                            task,
                            completed=min(s["t"], total_s),
                            description=f"soak at {rate:,.0f} events/s: "
                            f"RSS {s['rss'] / MIB:,.0f} MiB",
                        )
                    if time.monotonic() >= end:
                        break
                    due = min(time.monotonic() + args.every, end)
                    while (now := time.monotonic()) < due:
                        if args.rss_every > 0:
                            rss.append({"t": round(now - t0, 2), "rss": rss_bytes(worker.proc.pid)})
                        time.sleep(max(0.0, min(args.rss_every or args.every, due - now)))
        finally:
            stop_process(load, 10)
            worker.stop()
    start_s = 60 * args.warmup if args.warmup > 0 else None
    reports = read_probe(probe_file)
    result: dict[str, Any] = {
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "rate": rate,
        "max_rate": live["max_rate"] if live is not None else 2 * rate,
        "drain_rate": drain_rate,
        "live_probe": live,
        "rate_given": args.rate is not None,
        "baseline": str(args.baseline) if args.baseline else None,
        "idle_ttl_s": args.idle_ttl,
        "ended_ttl_s": args.ended_ttl,
        "ended_min_idle_s": args.ended_min_idle,
        "tombstone_ttl_s": args.tombstone_ttl,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "verdict": verdict(samples, args.tolerance, total_s, start_s, rss or None),
        "missed_samples": missed,
        "worker_load": load_verdict(samples, start_s, total_s),
        "heap": heap_verdict(reports, start_s, total_s),
        "pymalloc_sizes": size_verdict(reports, start_s, total_s),
        "samples": samples,
        "rss_every_s": args.rss_every,
        "rss": [[r["t"], round(r["rss"] / MIB, 1)] for r in rss],
    }
    print_table(console, samples, result)
    chart(samples, result, args.out / "soak.png")
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work / "data", ignore_errors=True)
    shutil.rmtree(work / "probe", ignore_errors=True)
    shutil.rmtree(work / "live", ignore_errors=True)
    console.print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.png'}")
    return result


if __name__ == "__main__":
    main()
