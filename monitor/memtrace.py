"""Where a running worker's memory is: reports written while it runs (off by default).

``AGENTWATCH_MEMPROBE=<file>`` makes ``agentwatch worker`` append a report to ``<file>`` every
``AGENTWATCH_MEMPROBE_EVERY_S`` seconds (default 30), from a daemon thread (so a stalled event
loop is reported too):

* RSS and glibc's own view (``mallinfo2``: bytes in use, free bytes it keeps, mmapped);
* Python's small-object allocator's (``pymalloc``, which maps its 1 MiB arenas itself, out of
  glibc's sight): arenas held, bytes in use in them, free space in partly used and empty pools,
  arenas mapped and unmapped so far, and its pools by block size (which sizes fragment);
* the worker's structures: sessions, tombstones and dirty sessions per partition, records
  waiting in the outbox and for acknowledgements, the producers' queued batches, the
  consumer's prefetched records, the last checkpoint's records, bytes and phase durations;
* with ``AGENTWATCH_MEMPROBE_OBJECTS=1``, the count of every type of object the cyclic
  collector tracks (frozen ones included), and its growth since the previous report; and the
  largest containers (dicts, lists, sets, deques) by length, named by what holds them
  (``module.name``, ``Type.attribute``), with their growth: a cache or index that only grows
  adds no objects the collector tracks when its keys and values are strings or numbers;
* with ``AGENTWATCH_MEMPROBE_GARBAGE=1``, the cyclic garbage waiting for the worker's next
  full collection (``monitor.collector`` freezes what survives a tick and collects it all only
  every ``AGENTWATCH_GC_FULL_INTERVAL_S``): a full collection that keeps what it finds
  (``gc.DEBUG_SAVEALL``), counted by type and size, then let go. It frees that garbage, so a
  run with it on no longer shows what the garbage would have cost.

``AGENTWATCH_TRACEMALLOC_FRAMES=<n>`` also traces Python allocations (``tracemalloc``, ``n``
frames each) and adds the largest sites still alive by line; it slows the worker down
several times, too much to soak at half its maximum rate. Used to find what grew in
``bench.soak`` (the soak passes these variables on to its worker).
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.runtime import Monitor

TOP = 20


def start_from_env(monitor: Monitor, env: Mapping[str, str] | None = None) -> bool:
    """Start the reporting thread if ``AGENTWATCH_MEMPROBE`` names a file."""
    env = os.environ if env is None else env
    path = env.get("AGENTWATCH_MEMPROBE")
    if not path:
        return False
    frames = int(env.get("AGENTWATCH_TRACEMALLOC_FRAMES", "0"))
    if frames > 0:
        tracemalloc.start(frames)
    probe = Probe(
        monitor,
        Path(path),
        objects=env.get("AGENTWATCH_MEMPROBE_OBJECTS") == "1",
        garbage=env.get("AGENTWATCH_MEMPROBE_GARBAGE") == "1",
    )
    every = float(env.get("AGENTWATCH_MEMPROBE_EVERY_S", "30"))
    threading.Thread(target=probe.forever, args=(every,), name="memprobe", daemon=True).start()
    return True


class Probe:
    def __init__(
        self, monitor: Monitor, path: Path, *, objects: bool, garbage: bool = False
    ) -> None:
        self.m = monitor
        self.path = path
        self.objects = objects
        self.garbage = garbage
        self.t0 = time.monotonic()
        self.types: Counter[str] = Counter()
        self.snapshot: tracemalloc.Snapshot | None = None
        self.lengths: dict[int, int] = {}

    def forever(self, every: float) -> None:
        while True:
            time.sleep(every)
            try:
                text = self.report()
            except Exception as exc:  # a diagnostic must not take the worker down
                text = f"memprobe failed: {exc!r}\n"
            with self.path.open("a") as out:
                out.write(text)

    def report(self) -> str:
        lines = [f"=== t={time.monotonic() - self.t0:.0f}s rss={_rss() / 2**20:.1f} MiB"]
        lines.append("malloc: " + _mallinfo())
        stats = _debug_malloc_stats()
        lines.append("pymalloc: " + _pymalloc(stats))
        lines.append("pymalloc sizes (size:pools/used/free blocks): " + _pymalloc_classes(stats))
        lines.append("worker: " + self.structures())
        if self.garbage:
            lines.extend(self.cyclic_garbage())
        if self.objects:
            lines.extend(self.object_counts())
        if tracemalloc.is_tracing():
            lines.extend(self.traced())
        return "\n".join(lines) + "\n"

    def structures(self) -> str:
        m = self.m
        parts = []
        for p, ps in sorted(m.partitions.items()):
            pl = ps.pipeline
            parts.append(
                f"p{p}: sessions={len(pl.sessions)} tombstones={len(pl.tombstones)} "
                f"dirty={len(pl.dirty)} since_base={ps.since_base}"
            )
        parts.append(f"outbox={len(m.outputs.outbox)} inflight={len(m.outputs.inflight)}")
        parts.append(f"published={len(m.published)}")
        parts.append("producer=" + _accumulator(getattr(m.app.producer, "_producer", None)))
        parts.append("kill_producer=" + _accumulator(m.outputs.kill_producer))
        parts.append("fetched=" + _fetched(m.app))
        parts.append(f"checkpoint={getattr(m.durability, 'last_stats', {})}")
        heap = getattr(m, "heap", None)
        if heap is not None:
            parts.append(f"heap trims={heap.trims} ({heap.seconds:.3f} s)")
        return "\n  ".join(parts)

    def object_counts(self, top_containers: int = 12) -> list[str]:
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        held: Counter[str] = Counter()  # bytes of large buffers, by the type holding them
        seen: set[int] = set()
        try:
            objs = gc.get_objects()
            counts = Counter(type(o).__name__ for o in objs)
            for o in objs:
                for r in gc.get_referents(o):
                    if (
                        isinstance(r, bytes | bytearray | str)
                        and len(r) > 512
                        and id(r) not in seen
                    ):
                        seen.add(id(r))
                        held[type(o).__name__] += len(r)
        finally:
            del objs
            seen.clear()  # before the containers' census, which would list it (a set held
            # by no object, of one id per large buffer)
            if frozen:
                gc.freeze()
        diff = counts.copy()
        diff.subtract(self.types)
        self.types = counts
        out = [f"objects: {sum(counts.values())} tracked ({frozen} frozen); top by growth:"]
        for name, grew in diff.most_common(TOP):
            out.append(f"  {name:40s} {counts[name]:10d} {grew:+10d}")
        out.append(f"buffers over 512 bytes: {sum(held.values()) / 2**20:.1f} MiB, held by:")
        for name, size in held.most_common(TOP):
            out.append(f"  {name:40s} {size / 2**20:10.1f} MiB")
        out.extend(self.containers(top_containers))
        return out

    def containers(self, top: int = 12) -> list[str]:
        """The longest dicts, lists, sets and deques (subclasses too), named by what holds
        them, with their length's change since the previous report (by identity). One pass
        over the collector's objects and what they refer to: a dict or set of only strings
        and numbers is not tracked, and is found through its holder."""
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        found: dict[int, Any] = {}
        holders: dict[int, Any] = {}
        try:
            for o in gc.get_objects():
                if isinstance(o, _CONTAINERS) and len(o) >= 1000:
                    found.setdefault(id(o), o)
                passing = isinstance(o, (list, tuple))  # an element's holder is its owner's
                for r in gc.get_referents(o):
                    if isinstance(r, _CONTAINERS) and len(r) >= 1000:
                        found.setdefault(id(r), r)
                        if not passing:
                            holders.setdefault(id(r), o)
            rows = sorted(((len(o), o) for o in found.values()), key=lambda p: p[0])[-top:]
            # an attribute dict (made when an attribute is read by name) names its object:
            # a second pass finds the objects of those dicts
            modules = {id(vars(m)): n for n, m in list(sys.modules.items()) if m is not None}
            spaces = {
                id(h): h
                for n, o in rows
                if type(h := holders.get(id(o))) is dict and id(h) not in modules
            }
            owners: dict[int, Any] = {}
            for o in gc.get_objects() if spaces else ():  # (reading __dict__ would make one)
                if type(o).__dictoffset__ and not isinstance(o, ModuleType):
                    for r in gc.get_referents(o):
                        if id(r) in spaces:
                            owners.setdefault(id(r), o)
            named = []
            for n, o in reversed(rows):
                h = holders.get(id(o))
                h = owners.get(id(h), h)
                named.append((n, o, _name(o, h, modules.get(id(h)))))
        finally:
            found.clear()
            holders.clear()
            if frozen:
                gc.freeze()
        out = ["largest containers (length, change):"]
        for n, o, name in named:
            before = self.lengths.get(id(o))
            change = "new" if before is None else f"{n - before:+d}"
            out.append(f"  {type(o).__name__:11s} {name[:56]:56s} {n:10d} {change:>8s}")
        self.lengths = {id(o): n for n, o, _ in named}
        return out

    def cyclic_garbage(self) -> list[str]:
        """What a full collection would free now: unreachable objects in reference cycles,
        by type (count, and bytes: each object's own size and that of the untracked objects
        it refers to, such as buffers and strings)."""
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        debug = gc.get_debug()
        gc.set_debug(debug | gc.DEBUG_SAVEALL)
        try:
            found = gc.collect()
            counts: Counter[str] = Counter()
            sizes: Counter[str] = Counter()
            seen: set[int] = {id(o) for o in gc.garbage}
            for o in gc.garbage:
                name = type(o).__name__
                counts[name] += 1
                sizes[name] += sys.getsizeof(o)
                for r in gc.get_referents(o):  # buffers and strings only it holds
                    if not gc.is_tracked(r) and id(r) not in seen:
                        seen.add(id(r))
                        sizes[name] += sys.getsizeof(r)
        finally:
            gc.garbage.clear()
            gc.set_debug(debug)
            if frozen:
                gc.freeze()
        total = sum(sizes.values())
        out = [f"cyclic garbage: {found} objects, {total / 2**20:.1f} MiB; by size:"]
        for name, size in sizes.most_common(TOP):
            out.append(f"  {name:40s} {counts[name]:10d} {size / 2**20:10.2f} MiB")
        return out

    def traced(self) -> list[str]:
        snap = tracemalloc.take_snapshot()
        total = sum(s.size for s in snap.statistics("filename"))
        out = [f"traced: {total / 2**20:.1f} MiB; top by line (MiB, growth MiB, blocks):"]
        if self.snapshot is None:
            rows = [(s.size, 0, s.count, s.traceback) for s in snap.statistics("lineno")[:TOP]]
        else:
            diffs = snap.compare_to(self.snapshot, "lineno")[:TOP]
            rows = [(d.size, d.size_diff, d.count, d.traceback) for d in diffs]
        self.snapshot = snap
        for size, grew, count, tb in rows:
            out.append(f"  {size / 2**20:8.1f} {grew / 2**20:+8.1f} {count:9d} {tb[0]}")
        return out


_CONTAINERS = (dict, list, set, deque)


def _name(obj: Any, holder: Any, module: str | None = None) -> str:
    """``module.name``, ``Type.attribute`` or ``dict[key]`` for ``obj`` held by ``holder``
    (the dict of ``module`` if named); else the holder's type, or ``?``."""
    if holder is None:
        return "?"
    if type(holder) is dict:
        key = next((k for k, v in holder.items() if v is obj), None)
        return f"{module}.{key}" if module else f"dict[{key!r}]"
    attrs = getattr(holder, "__dict__", None)  # 3.11 keeps instance attributes inline
    if isinstance(attrs, dict):
        key = next((k for k, v in attrs.items() if v is obj), None)
        if key is not None:
            return f"{type(holder).__name__}.{key}"
    for cls in type(holder).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if getattr(holder, slot, None) is obj:
                return f"{type(holder).__name__}.{slot}"
    return f"in {type(holder).__name__}"


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo() -> str:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        mi = libc.mallinfo2()
    except (OSError, AttributeError):
        return "(no mallinfo2)"
    mib = 2**20
    return (
        f"in use {mi.uordblks / mib:.1f} MiB, free kept {mi.fordblks / mib:.1f} MiB, "
        f"mmapped {mi.hblkhd / mib:.1f} MiB ({mi.hblks} blocks), arena {mi.arena / mib:.1f} MiB"
    )


#: the lines of ``_PyObject_DebugMallocStats`` the report keeps (arenas are 1 MiB each)
_PYMALLOC_LINES = {
    "# arenas allocated current": "arenas",
    "# arenas highwater mark": "highwater",
    "# bytes in allocated blocks": "in use",
    "# bytes in available blocks": "free in used pools",
    "unused pools": "empty pools",
    "# arenas allocated total": "mapped",
    "# arenas reclaimed": "reclaimed",
}


def _debug_malloc_stats() -> str | None:
    """The text of ``_PyObject_DebugMallocStats`` (what ``sys._debugmallocstats()`` prints on
    stderr), written to a temporary file instead; None where the interpreter has none."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        stats = ctypes.pythonapi._PyObject_DebugMallocStats
        stats.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    with tempfile.NamedTemporaryFile("r", suffix=".pymalloc") as tmp:
        fp = libc.fopen(tmp.name.encode(), b"w")
        if not fp:
            return None
        try:
            stats(fp)
        finally:
            libc.fclose(fp)
        return tmp.read()


def _pymalloc(text: str | None = None) -> str:
    """Python's small-object allocator (``pymalloc``): its arenas are mapped directly, not
    through glibc, so ``mallinfo2`` does not see them. Arenas held against the bytes in use
    in them is its fragmentation (an arena is returned only when all its pools are empty).
    Arenas allocated and reclaimed since the start are its churn: an arena is mapped for a
    peak and unmapped once all its pools are empty again."""
    text = _debug_malloc_stats() if text is None else text
    if text is None:
        return "(no _PyObject_DebugMallocStats)"
    found: dict[str, int] = {}
    for line in text.splitlines():
        head, _, value = line.rpartition("=")
        for prefix, name in _PYMALLOC_LINES.items():
            if name not in found and prefix in head:  # "<what> = <count or bytes>"
                found[name] = int(value.replace(",", "").strip())
    if "arenas" not in found:
        return "(not reported)"
    mib = 2**20
    return (
        f"{found['arenas']} arenas ({found.get('highwater', 0)} at most), "
        + ", ".join(
            f"{name} {found[name] / mib:.1f} MiB"
            for name in ("in use", "free in used pools", "empty pools")
            if name in found
        )
        + f", {found.get('mapped', 0)} mapped and {found.get('reclaimed', 0)} unmapped so far"
    )


#: a row of ``_PyObject_DebugMallocStats``'s size-class table: class, block size, pools,
#: blocks in use, blocks free in those pools
_CLASS_ROW = re.compile(r"^\s*\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)


def _pymalloc_classes(text: str | None = None) -> str:
    """pymalloc's pools by block size, ``<size>:<pools>/<blocks in use>/<blocks free>`` for
    each size that has a pool (pools are 16 KiB and serve one size each). Fragmentation by
    size: a size whose pools grow while its blocks in use do not has its free blocks spread
    over pools that its live objects keep."""
    text = _debug_malloc_stats() if text is None else text
    if text is None:
        return "(no _PyObject_DebugMallocStats)"
    rows = [m.groups() for m in _CLASS_ROW.finditer(text.split("# arenas", 1)[0])]
    return " ".join(f"{size}:{pools}/{used}/{free}" for size, pools, used, free in rows)


def _accumulator(producer: Any) -> str:
    acc = getattr(producer, "_message_accumulator", None)
    if acc is None:
        return "-"
    queued = [b for batches in acc._batches.values() for b in batches]
    pending = list(acc._pending_batches)
    size = sum(b._builder.size() for b in queued if b._builder is not None)
    return f"{len(queued)} queued batches ({size / 2**20:.1f} MiB), {len(pending)} in flight"


def _fetched(app: Any) -> str:
    consumer = getattr(getattr(app, "_consumer", None), "_thread", None)
    fetcher = getattr(getattr(consumer, "_consumer", None), "_fetcher", None)
    if fetcher is None:
        return "-"
    records = getattr(fetcher, "_records", {})
    return f"{len(records)} partitions with prefetched records"
