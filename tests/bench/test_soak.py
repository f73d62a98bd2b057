"""The soak harness runs a real worker under load and writes its samples, verdict and chart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import soak
from bench.soak import (
    heap_verdict,
    main,
    read_probe,
    size_verdict,
    slope_interval,
    slope_per_minute,
    verdict,
)
from monitor import memtrace
from monitor.broker import EmbeddedBroker
from monitor.runtime import Monitor
from monitor.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_a_short_soak_samples_the_worker_and_writes_json_and_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def sample_or_time_out(*args: Any) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:  # a scrape that timed out (a busy machine) is skipped, not fatal
            raise TimeoutError("timed out")
        return real_sample(*args)

    real_sample = soak.sample
    monkeypatch.setattr(soak, "sample", sample_or_time_out)
    result = main(
        ["--warmup", "0.1", "--minutes", "0.25", "--rate", "150", "--every", "2"]
        + ["--heap-every", "2", "--out", str(tmp_path)]
    )
    written = json.loads((tmp_path / "soak.json").read_text())
    samples = written["samples"]
    assert len(samples) >= 5 and samples == result["samples"]
    assert all(s["rss"] > 20 * 2**20 for s in samples)  # a live worker's resident memory
    assert samples[-1]["sent"] > 0 and samples[-1]["done"] > 0  # load was sent and consumed
    assert samples[-1]["sessions"] > 0
    assert samples[-1]["broker_cpu"] > 0 and samples[-1]["broker_rss"] > 10 * 2**20  # Tansu's
    assert written["rate"] == 150
    assert written["missed_samples"] == 1 and len(samples) == len(calls) - 1
    assert set(written["verdict"]) >= {"slope_mib_per_min", "flat", "kept_up"}
    # judged: the minutes after the warm-up (6 s), up to the planned end (21 s)
    first, last = written["verdict"]["window_s"]
    assert 6.0 <= first < 9.0 and last <= 21.0
    # RSS read every second between the scrapes, and those readings judged
    assert written["rss_every_s"] == 1.0 and len(written["rss"]) >= 14
    assert all(mib > 20 for _, mib in written["rss"])
    assert 10 <= written["verdict"]["readings"] <= 16
    sizes = written["pymalloc_sizes"]  # the probe's pools by block size, read back
    assert sizes is not None and sizes["sizes"] and all(r["pools_mib"] > 0 for r in sizes["sizes"])
    assert written["warmup_minutes"] == 0.1
    assert 0 < written["worker_load"]["core_share"] < 2  # a live worker's share of a core
    assert written["worker_load"]["cpu_per_event_us"] > 0
    heap = written["heap"]  # the worker's own heap reports, read back
    assert heap is not None and heap["reports"] >= 4 and 2 <= heap["judged"] < heap["reports"]
    assert 20 < heap["in_use"]["mean_mib"] < heap["held"]["mean_mib"]
    assert (tmp_path / "soak.png").stat().st_size > 10_000
    assert not (tmp_path / "soak-run" / "data").exists()


def test_the_verdict_reads_the_second_half() -> None:
    mib = 2**20
    assert slope_per_minute([(0.0, 1.0), (60.0, 3.0), (120.0, 5.0)]) == pytest.approx(2.0)
    rising = [{"t": 30.0 * i, "rss": (100 + (i if i >= 5 else 0)) * mib} for i in range(11)]
    steady = [{"t": 30.0 * i, "rss": (100 + (i if i < 5 else 5)) * mib} for i in range(11)]
    assert not verdict(rising, 0.02)["flat"]  # +5 MiB over the second half of ~105
    assert verdict(steady, 0.02)["flat"]  # growth only in the first half
    # a sample past the planned end (just after the worker's full collection and trim) is
    # not read: with it, the rising run's dip at the end would pass for flat
    dipped = [*rising, {"t": 301.5, "rss": 90 * mib}]
    assert verdict(dipped, 0.02)["flat"]
    assert not verdict(dipped, 0.02, planned_s=300.0)["flat"]
    assert verdict(dipped, 0.02, planned_s=300.0) == verdict(rising, 0.02)


def test_after_a_warm_up_the_verdict_reads_every_minute_past_it() -> None:
    """With a warm-up, the judged window is everything after it: growth that has stopped by
    then passes; growth that goes on past it fails, in either half of the window."""
    mib = 2**20

    def run(rss_at: Any) -> list[dict[str, float]]:
        return [{"t": 30.0 * i, "rss": rss_at(30.0 * i) * mib} for i in range(61)]  # 30 min

    settles = run(lambda t: 100 + min(t, 1200) / 60)  # +1 MiB/min for 20 minutes, then flat
    late = run(lambda t: 120 + max(0.0, t - 1500) / 60 * 2)  # flat, then +2 MiB/min at 25-30
    early = run(lambda t: 120 + min(max(0.0, t - 1200), 300) / 60 * 2)  # +2 MiB/min at 20-25
    judged = verdict(settles, 0.02, planned_s=1800.0, start_s=1200.0)
    assert judged["flat"] and judged["slope_mib_per_min"] == pytest.approx(0.0)
    assert judged["window_s"] == [1200.0, 1800.0]
    assert not verdict(settles, 0.02, planned_s=1800.0, start_s=600.0)["flat"]
    assert not verdict(late, 0.02, planned_s=1800.0, start_s=1200.0)["flat"]
    assert not verdict(early, 0.02, planned_s=1800.0, start_s=1200.0)["flat"]
    with pytest.raises(ValueError, match="no samples"):
        verdict(settles, 0.02, planned_s=1800.0, start_s=1790.0)


def test_the_heap_split_reads_the_probes_reports(tmp_path: Path) -> None:
    """What the worker holds (heap in use) and what its allocators hold, read from real
    ``monitor.memtrace`` reports; a file that another worker wrote to first is read from the
    last worker's first report on."""
    env = {"AGENTWATCH_STORE_URL": "none", "AGENTWATCH_DATADIR": str(tmp_path / "data")}
    probe = memtrace.Probe(Monitor(Settings.from_env(env)), tmp_path / "p.txt", objects=False)
    one = probe.report()
    kept = [str(i) * 4 for i in range(150_000)]  # ~8 MiB more of small objects in use
    two = probe.report()
    path = tmp_path / "probe.txt"
    path.write_text(one.replace("=== t=0s", "=== t=40s") + one + two.replace("t=0s", "t=30s"))
    reports = read_probe(path)
    assert [r["t"] for r in reports] == [0.0, 30.0]
    assert reports[1]["pymalloc_in_use"] >= reports[0]["pymalloc_in_use"] + 6
    assert all(r["c_in_use"] < r["in_use"] < r["held"] for r in reports)
    rows = [{**reports[0], "t": 30.0 * i, "in_use": 100.0 + i, "held": 150.0} for i in range(9)]
    split = heap_verdict(rows)
    assert split is not None and split["in_use"]["slope_mib_per_min"] == pytest.approx(2.0)
    assert split["held"]["slope_mib_per_min"] == 0.0
    assert heap_verdict(rows[:3]) is None
    # over a window after a warm-up (from 150 s) and up to the planned end (210 s)
    bent = [{**r, "in_use": 100.0 + min(r["t"], 150.0) / 30} for r in rows]
    later = heap_verdict(bent, start_s=150.0, end_s=210.0)
    assert later is not None and later["judged"] == 3 and later["reports"] == 8
    assert later["in_use"]["slope_mib_per_min"] == 0.0
    assert heap_verdict(bent)["in_use"]["slope_mib_per_min"] > 0  # type: ignore[index]
    assert len(kept) == 150_000


def test_pools_by_block_size_show_which_size_grew(tmp_path: Path) -> None:
    """The probe's pymalloc pools by block size, read back: ~40 MiB more of 133-byte objects
    (a 100-byte ``bytes`` each, so 144-byte blocks) between two reports is the size whose
    pools grew most, with its blocks in use; a report without sizes gives no split."""
    env = {"AGENTWATCH_STORE_URL": "none", "AGENTWATCH_DATADIR": str(tmp_path / "data")}
    probe = memtrace.Probe(Monitor(Settings.from_env(env)), tmp_path / "p.txt", objects=False)
    one = probe.report()
    kept = [bytes(100) for _ in range(300_000)]
    two = probe.report()
    path = tmp_path / "probe.txt"
    path.write_text(one + two.replace("=== t=0s", "=== t=30s"))
    reports = read_probe(path)
    assert reports[1]["pools_144"] - reports[0]["pools_144"] >= 38  # MiB of 16 KiB pools
    split = size_verdict(reports, start_s=0.0)
    assert split is not None
    top = split["sizes"][0]
    assert top["size"] == 144 and top["pools_slope_mib_per_min"] >= 76  # over half a minute
    assert top["used_slope_mib_per_min"] >= 76
    assert reports[0]["arenas_mapped"] >= 1  # a process has mapped an arena at least
    assert split["arenas_mapped"] == reports[1]["arenas_mapped"] - reports[0]["arenas_mapped"]
    bare = re.sub(r"^pymalloc sizes.*\n", "", one, flags=re.M)
    path.write_text(bare + bare.replace("=== t=0s", "=== t=30s"))
    assert "pools_144" not in read_probe(path)[0]
    assert size_verdict(read_probe(path), start_s=0.0) is None
    assert len(kept) == 300_000


def test_the_interval_says_when_a_run_cannot_tell() -> None:
    """The 95% interval of the growth comes from the scatter of one-minute means: a steady
    line with a small seconds-long cycle is flat whatever the noise, a steep one growing,
    and a slope near the tolerance under minute-to-minute swings cannot be told apart."""
    import random

    mib = 2**20
    rng = random.Random(5)

    def run(slope: float, minute_swing: float) -> list[dict[str, float]]:
        swings = [rng.uniform(-minute_swing, minute_swing) for _ in range(10)]
        return [
            {"t": float(t), "rss": (500 + slope * t / 60 + swings[t // 60] + 8 * (t % 5)) * mib}
            for t in range(600)  # a reading a second, a 5 s cycle of 32 MiB
        ]

    steady = verdict(run(0.0, 1.0), 0.02)
    assert steady["flat"] and steady["decided"] == "flat", steady
    lo, hi = steady["growth_interval_pct"]
    assert lo < 0 < hi < 2
    steep = verdict(run(3.0, 1.0), 0.02)
    assert not steep["flat"] and steep["decided"] == "growing", steep
    noisy = verdict(run(0.9, 12.0), 0.02)
    assert noisy["decided"] == "within noise", noisy
    assert noisy["growth_interval_pct"][0] < 2 < noisy["growth_interval_pct"][1]
    # slope_interval on its own: 2 per minute, exactly, and too few blocks to say anything
    line = [(float(t), 2.0 * t / 60) for t in range(0, 600, 10)]
    slope, half = slope_interval(line)  # type: ignore[misc]
    assert slope == pytest.approx(2.0) and half == pytest.approx(0.0, abs=1e-9)
    assert slope_interval(line[:12]) is None


def test_the_verdict_judges_the_frequent_readings_when_given() -> None:
    """The scraped samples (every 5 s) keep the lag; RSS read every second is what is judged:
    samples that happen to land on the top of a cycle late in the window and its bottom early
    read as growth, readings that cover every phase do not."""
    mib = 2**20
    cycle = [0, 10, 20, 30, 40]  # MiB over a 5 s cycle
    readings = [{"t": float(t), "rss": (500 + cycle[t % 5]) * mib} for t in range(600)]
    aliased = [
        {"t": float(t), "rss": (500 + cycle[min(4, t // 120)]) * mib, "sent": 1.0, "done": 1.0}
        for t in range(0, 600, 5)
    ]  # every 5 s, the phase drifting from the bottom to the top of the cycle
    assert not verdict(aliased, 0.02)["flat"]
    judged = verdict(aliased, 0.02, rss=readings)
    assert judged["flat"] and judged["readings"] == 300 and judged["kept_up"]


def _soak_result(
    rss_at: Any, rate: float = 3000.0, kept_up: bool = True, when: str = "2026-12-02T03:00:00Z"
) -> dict[str, Any]:
    """A soak's result as ``main`` writes it: 20 minutes of warm-up, minutes 20-30 judged, RSS
    read every second (``rss_at(t)`` MiB), scraped samples every 5 s."""
    mib = 2**20
    readings = [{"t": float(t), "rss": rss_at(t) * mib} for t in range(1800)]
    samples = [
        {"t": float(t), "rss": rss_at(t) * mib, "sent": 1000.0 * t, "done": 1000.0 * t}
        | {"cpu": 0.5 * t}  # half a core: 500 µs per event
        for t in range(0, 1801, 5)
    ]
    if not kept_up:
        samples[-1]["done"] = 0.5 * samples[-1]["sent"]
    return {
        "when": when,
        "rate": rate,
        "verdict": verdict(samples, 0.02, planned_s=1800.0, start_s=1200.0, rss=readings),
        "samples": samples,
        "rss": [[r["t"], round(r["rss"] / mib, 1)] for r in readings],
    }


def test_pooled_runs_decide_what_each_run_alone_cannot() -> None:
    """Four runs of one slope (0.2 MiB/min, 0.4% of 500 MiB over 10 minutes) under minute-to-
    minute swings of up to 10 MiB: each run's own interval spans the 2% tolerance, the pooled
    one does not; a steady 3 MiB/min is growing, pooled or not."""
    import random

    from bench.soak import pooled_verdict

    rng = random.Random(11)

    def run(slope: float, level: float, swing: float) -> dict[str, Any]:
        swings = [rng.uniform(-swing, swing) for _ in range(31)]
        return _soak_result(lambda t: level + slope * t / 60 + swings[t // 60] + 6 * (t % 5))

    runs = [run(0.2, level, 10.0) for level in (480, 500, 510, 530)]
    assert all(r["verdict"]["decided"] == "within noise" for r in runs), [
        r["verdict"]["growth_interval_pct"] for r in runs
    ]
    pool = pooled_verdict(runs)
    assert pool["decided"] == "flat" and pool["pooled_runs"] == 4, pool
    assert pool["means"] == 40 and pool["df"] == 35 and pool["interval_used"] == "common slope"
    lo, hi = pool["growth_interval_pct"]
    assert lo < 0.4 < hi < 2.0
    growing = pooled_verdict([run(3.0, level, 8.0) for level in (480, 520)])
    assert growing["decided"] == "growing", growing


def test_pooling_fits_one_slope_with_each_runs_own_level() -> None:
    """Exact lines of one slope at different levels: the pooled slope is theirs, exactly, and
    no interval; a level between runs is not read as growth (a single fit through all the
    points would read the 200 MiB between the runs' levels as a slope)."""
    from bench.soak import judged_points, pooled_verdict

    runs = [_soak_result(lambda t, lv=lv: lv + 2.0 * t / 60) for lv in (300, 500, 700)]
    pool = pooled_verdict(runs)
    assert pool["slope_mib_per_min"] == pytest.approx(2.0, abs=1e-3)
    lo, hi = pool["growth_interval_pct"]
    assert hi - lo == pytest.approx(0.0, abs=0.01)
    # the judged points are the window's one-second readings, or the samples without them
    points = judged_points(runs[0])
    assert points[0][0] == 1200.0 and points[-1][0] == 1799.0 and len(points) == 600
    scraped = judged_points({**runs[0], "rss": []})
    assert len(scraped) == 120 and scraped[0][0] == 1200.0 and scraped[-1][0] == 1795.0


def test_runs_that_disagree_or_fell_behind_are_not_pooled_as_one() -> None:
    """Runs whose slopes differ by more than their noise get the interval from the spread of
    their slopes (wide with few runs), not the common slope's; a run that fell behind the load
    is shown and left out, and with fewer than two left there is nothing to decide."""
    import random

    from bench.soak import pooled_verdict

    rng = random.Random(3)
    swings = [rng.uniform(-1, 1) for _ in range(31)]  # 1 MiB between one-minute means
    flat = _soak_result(lambda t: 500 + swings[t // 60] + 2 * (t % 5))
    rising = _soak_result(lambda t: 500 + 3.0 * t / 60 + swings[t // 60] + 2 * (t % 5))
    pool = pooled_verdict([flat, rising])
    assert pool["p_slopes_differ"] < 0.05 and pool["interval_used"] == "between runs"
    lo, hi = pool["between_runs_interval_pct"]
    assert lo < 0 and hi > 2 and pool["decided"] == "within noise", pool
    behind = _soak_result(lambda t: 500 + 2 * (t % 5), kept_up=False)
    alone = pooled_verdict([flat, behind])
    assert alone["pooled_runs"] == 1 and alone["decided"] is None
    assert alone["runs"][1]["left_out"] == "fell behind the load"
    assert "left_out" not in alone["runs"][0]


def test_pool_reads_soak_json_files(tmp_path: Path) -> None:
    """``--pool`` judges earlier runs' files and writes the pooled verdict next to them."""
    paths = []
    for k, lv in enumerate((480, 520)):
        path = tmp_path / f"soak-{k}.json"
        path.write_text(json.dumps(_soak_result(lambda t, lv=lv: lv + 0.1 * t / 60)))
        paths.append(str(path))
    pool = main(["--pool", *paths, "--out", str(tmp_path / "pooled")])
    written = json.loads((tmp_path / "pooled" / "soak-pool.json").read_text())
    assert written == pool and pool["pooled_runs"] == 2
    assert pool["slope_mib_per_min"] == pytest.approx(0.1, abs=0.01)


def test_the_worker_load_over_the_window_is_reported() -> None:
    """Its share of a core and CPU per event over the judged window, which says whether the
    rate is half of what the worker sustains (the default rate comes from a backlog's drain,
    cheaper per event than live traffic); the pool shows each run's share."""
    from bench.soak import load_verdict, pooled_verdict

    run = _soak_result(lambda t: 500.0)
    load = load_verdict(run["samples"], 1200.0, 1800.0)
    assert load == {
        "core_share": 0.5,
        "cpu_per_event_us": 500.0,
        "events_per_core_s": 2000,
        "done_per_s": 1000,
    }
    busy = [{**x, "cpu": 0.9 * x["t"]} if x["t"] >= 1500 else x for x in run["samples"]]
    assert load_verdict(busy, 1500.0, 1800.0)["core_share"] == 0.9  # type: ignore[index]
    assert load_verdict(run["samples"], 1799.0, 1800.0) is None  # one sample: no rate
    assert pooled_verdict([run, run])["runs"][0]["core_share"] == 0.5


def test_the_live_maximum_is_a_whole_core_at_the_live_cost_per_event() -> None:
    """The default rate is half of what a worker sustains on live traffic: the probe's worker
    reads 1,000 events/s on 0.3 of a core over its last two thirds (300 µs an event), so a
    whole core reads ~3,333/s; the first third (filling sessions, cheaper) is not read."""
    from bench.soak import live_max_rate

    samples = [
        {"t": float(t), "rss": 0.0, "sent": 1000.0 * t, "done": 1000.0 * t}
        | {"cpu": 0.1 * t if t <= 30 else 3.0 + 0.3 * (t - 30)}
        for t in range(0, 91, 5)
    ]
    live = live_max_rate(samples, 1000.0, 90.0)
    assert live["max_rate"] == 3333 and live["cpu_per_event_us"] == 300.0
    assert live["core_share"] == 0.3 and live["rate"] == 1000.0
    idle = [{**s, "done": 0.0} for s in samples]
    with pytest.raises(RuntimeError, match="read nothing"):
        live_max_rate(idle, 1000.0, 90.0)


def test_the_live_probe_feeds_a_worker_live_traffic_and_reads_its_cost(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The live probe against the real broker: a worker of its own group on its own topic,
    fed at the given rate, and what a core of it reads from its CPU per event."""
    from bench.soak import probe_live_rate

    base = Settings.from_env(
        {}, profile="embedded", broker=broker.url, topic_partitions=2, datadir=tmp_path,
        app_id="soak-test", topic_actions="soak-test.actions",
    )  # fmt: skip
    live = probe_live_rate(broker, base, 200.0, 12.0, tmp_path, {}, every=1.0)
    assert 0 < live["core_share"] < 2 and live["cpu_per_event_us"] > 0
    assert 100 <= live["done_per_s"] <= 300  # it read the live load, at about its rate
    assert live["max_rate"] == live["events_per_core_s"] > 0
    assert (tmp_path / "live.log").exists() and (tmp_path / "live-load.log").exists()
