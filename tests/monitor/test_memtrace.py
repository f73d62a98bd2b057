"""The worker's memory report (``AGENTWATCH_MEMPROBE``): off unless asked for, and what it says."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from monitor import memtrace
from monitor.runtime import Monitor
from monitor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _monitor(tmp_path: Path) -> Monitor:
    env = {"AGENTWATCH_STORE_URL": "none", "AGENTWATCH_DATADIR": str(tmp_path / "data")}
    return Monitor(Settings.from_env(env))


def test_off_unless_a_file_is_named(tmp_path: Path) -> None:
    assert memtrace.start_from_env(_monitor(tmp_path), {}) is False


class _Holder:
    """A type of object the test alone makes."""


def test_report_names_rss_heap_structures_and_object_growth(tmp_path: Path) -> None:
    m = _monitor(tmp_path)
    m.partitions[0] = m.new_partition(0, 0)
    probe = memtrace.Probe(m, tmp_path / "probe.txt", objects=True)
    first = probe.report()
    assert re.match(r"=== t=\d+s rss=\d+\.\d MiB\n", first)
    assert "malloc: in use" in first
    assert "p0: sessions=0 tombstones=0 dirty=0 since_base=0" in first
    assert "outbox=0 inflight=0" in first
    kept = [bytearray(100_000) for _ in range(50)]
    holders = [[b] for b in kept]  # tracked holders of large buffers
    marked = [_Holder() for _ in range(50)]
    second = probe.report()
    grew = re.search(r"^  _Holder +(\d+) +\+(\d+)$", second, re.M)
    assert grew is not None and int(grew.group(2)) == len(marked)
    assert re.search(r"^  list +4\.8 MiB$", second, re.M) and len(holders) == 50
    assert "largest containers (length, change):" in second


def test_pymalloc_arenas_follow_small_objects() -> None:
    """Python's own arenas (out of glibc's sight) are reported, and grow with small objects."""
    before = memtrace._pymalloc()
    match = re.match(r"(\d+) arenas \((\d+) at most\), in use (\d+\.\d) MiB", before)
    assert match is not None, before
    kept = [str(i) * 3 for i in range(200_000)]  # ~12 MiB of small strings
    after = re.match(r"\d+ arenas \(\d+ at most\), in use (\d+\.\d) MiB", memtrace._pymalloc())
    assert after is not None and float(after.group(1)) >= float(match.group(3)) + 8
    assert len(kept) == 200_000


def test_pymalloc_pools_by_size() -> None:
    """The size-class table (pools of one block size each): 40 MiB of 144-byte blocks adds
    ~2,500 pools of that size."""

    def pools(size: int) -> int:
        cell = re.search(rf"(?:^| ){size}:(\d+)/(\d+)/(\d+)", memtrace._pymalloc_classes())
        assert cell is not None
        return int(cell.group(1))

    before = pools(144)
    kept = [bytes(100) for _ in range(300_000)]  # 133 bytes each: 144-byte blocks
    assert pools(144) >= before + 2_400
    assert len(kept) == 300_000


def test_arenas_mapped_and_unmapped_are_counted() -> None:
    """The arenas mapped and unmapped so far, in a fresh interpreter (a test process keeps
    free pools from earlier tests, which a new allocation fills before it maps an arena):
    40 MiB of small objects maps ~40 arenas, and freeing them unmaps most of them."""
    code = textwrap.dedent(
        """
        import re
        from monitor import memtrace
        def churn():
            found = re.search(r"(\\d+) mapped and (\\d+) unmapped so far", memtrace._pymalloc())
            return int(found.group(1)), int(found.group(2))
        mapped, unmapped = churn()
        kept = [bytes(100) for _ in range(300_000)]
        grown = churn()[0] - mapped
        del kept
        print(grown, churn()[1] - unmapped)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    mapped, unmapped = (int(x) for x in out.stdout.split())
    assert mapped >= 30, out.stdout
    assert unmapped >= 20, out.stdout


class _Knot:
    """An object in a reference cycle with itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_garbage_census_counts_frozen_cycles_and_frees_them(tmp_path: Path) -> None:
    """Cycles that became garbage after the worker froze them (``monitor.collector``) wait
    for the next full collection: the census finds them by type, and lets them go."""
    import gc
    import weakref

    m = _monitor(tmp_path)
    probe = memtrace.Probe(m, tmp_path / "probe.txt", objects=False, garbage=True)
    knots = [_Knot() for _ in range(300)]
    first = weakref.ref(knots[0])
    gc.freeze()
    try:
        del knots
        assert first() is not None  # frozen: the young collections do not see them
        gc.collect(1)
        assert first() is not None
        report = probe.report()
    finally:
        gc.unfreeze()
    found = re.search(r"^  _Knot +(\d+) +\d+\.\d\d MiB$", report, re.M)
    assert found is not None and int(found.group(1)) >= 300, report
    assert re.search(r"^cyclic garbage: \d+ objects", report, re.M)
    assert first() is None
    assert gc.garbage == []


class _Cache:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}


def test_containers_are_named_by_their_holder_with_their_growth(tmp_path: Path) -> None:
    """A cache that only grows adds no tracked objects (string keys and values); the report
    names it by its holder and shows its length move between reports."""
    m = _monitor(tmp_path)
    probe = memtrace.Probe(m, tmp_path / "probe.txt", objects=True)
    cache = _Cache()
    cache.entries.update((f"k{i}", f"v{i}") for i in range(5_000_000, 5_003_000))
    first = "\n".join(probe.containers(top=10_000))
    assert re.search(r"^  dict +_Cache\.entries +3000 +new$", first, re.M), first
    cache.entries.update((f"k{i}", f"v{i}") for i in range(6_000_000, 6_002_000))
    second = "\n".join(probe.containers(top=10_000))
    assert re.search(r"^  dict +sys\.modules +\d+ +[+-]?\d+$", second, re.M), second
    assert re.search(r"^  dict +_Cache\.entries +5000 +\+2000$", second, re.M), second


def test_the_census_does_not_list_its_own_working_set(tmp_path: Path) -> None:
    """The object census keeps the ids of the large buffers it has counted in a set; the
    containers' census that follows it must not report that set (it did, as an unnamed set
    as long as the number of large buffers, a new one at every report)."""
    probe = memtrace.Probe(_monitor(tmp_path), tmp_path / "probe.txt", objects=True)
    holders = [[f"{i:06d}" + "x" * 600] for i in range(20_000)]  # tracked, each a large str
    report = "\n".join(probe.object_counts(top_containers=10_000))
    assert re.search(r"^  list +[\d.]+ MiB$", report, re.M), report  # the buffers were counted
    unnamed = re.findall(r"^  set +\? +(\d+) ", report, re.M)
    assert not [n for n in unnamed if int(n) >= len(holders)], report
