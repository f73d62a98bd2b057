"""What a session remembers of its recent events, compactly: steps and event ids.

A worker holds hundreds of thousands of live sessions, each with a bounded history, so the
per-event cost of that history decides how much memory a worker needs. Both structures here
keep fixed-size records in one buffer instead of a Python object per event:

* :class:`StepLog` - the last ``cap`` steps of a root session (a ring of 39-byte records:
  seq, time, event id - 16 bytes: a UUID in binary, a short id inline, a longer one in the
  table below -, and indices into a small per-log table of the session ids, destinations and
  step shapes - a (kind, tool, capabilities) tuple shared by every session - the steps
  share); iterating it gives :class:`Step` tuples back;
* :class:`RecentIds` - the last ``cap`` event ids, as 64-bit keys (BLAKE2b of the id, the
  same in every process, so a restarted worker recognises the events a checkpoint already
  holds), for deduplication: 8 bytes per id in insertion order, plus a sorted copy for
  lookups once there are more than a few.

>>> log = StepLog(2)
>>> for i in range(3):
...     log.append(Step(i, float(i), "s1", "tool_call", "read", frozenset({"read"}), f"e{i}", None))
>>> [(s.seq, s.event_id) for s in log]
[(1, 'e1'), (2, 'e2')]
>>> ids = RecentIds(2)
>>> for e in ("a", "b", "c"):
...     ids.add(id_key(e))
>>> [id_key(e) in ids for e in ("a", "b", "c")]
[False, True, True]
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from hashlib import blake2b
from typing import Any, NamedTuple

from detectors.intern import canonical


class Step(NamedTuple):
    """One processed event, compactly."""

    seq: int | None
    ts: float
    session_id: str
    kind: str
    tool: str | None
    caps: frozenset[str]
    event_id: str
    destination: str | None


# seq, ts, session, step shape - (kind, tool, caps) -, destination (atom indices), id length,
# id bytes
_REC = struct.Struct("<qdHHHB16s")
# the first step of each capability (in ``StepLog.pinned`` order): session atom, ts, id
_FIRST = struct.Struct("<HdB16s")
# the record layouts of checkpoints written before (36-byte ids inline; then kind, tool and
# capabilities apart)
_REC_V1 = struct.Struct("<qdHHHHHB36s")
_REC_V3 = struct.Struct("<qdHHHHHB16s")
_FIRST_V1 = struct.Struct("<HdB36s")
#: version of the pickled layout (an unversioned 7-tuple is the first; version 2 kept the
#: first step of each capability apart from the start, ``firsts`` None only when none was seen,
#: which version 3 reads the same: no record then shows a capability; versions 2 and 3 kept a
#: step's kind, tool and capabilities as three atoms, version 4 as one shared shape)
LOG_VERSION = 4
_ID_BYTES = 16
_ID_UUID = 0xFE
#: capabilities whose first step a log pins
MAX_FIRSTS = 64
_NO_SEQ = -(2**63)
_NONE = 0xFFFF
_ID_IN_ATOMS = 0xFF


class StepLog:
    """The last ``cap`` steps, as fixed-size records in a ring (see the module docstring)."""

    # Immutable ``bytes`` and tuples rather than a bytearray and a list: one allocation each,
    # of exactly their size (a bytearray or a list is an object plus a buffer that grows by an
    # eighth and more; ~190 bytes more for a session of a few steps). Appending builds a new
    # one, a copy of at most ``cap`` records: most sessions hold a few.
    __slots__ = ("cap", "buf", "atoms", "head", "pinned", "firsts")

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        #: the records, oldest first until the ring is full (then from ``head``)
        self.buf = b""
        #: the distinct strings and capability sets the records point at
        self.atoms: tuple[Any, ...] = ()
        #: index of the oldest record once the ring is full
        self.head = 0
        #: the capabilities seen so far, and the first step that showed each, once the ring
        #: moves on (``firsts`` None until then: the records still hold every first step, and
        #: :meth:`first_seen` reads them there - most sessions never fill the ring, and a copy
        #: of those steps was ~140 bytes of each)
        self.pinned: tuple[str, ...] = ()
        self.firsts: bytes | None = None

    @property
    def count(self) -> int:
        """How many steps the log holds."""
        return len(self.buf) // _REC.size

    def _atom(self, x: Any, *, share: bool = True) -> int:
        if x is None:
            return _NONE
        atoms = self.atoms
        try:
            return atoms.index(x)
        except ValueError:
            # shared with every other session holding it (not session ids: no other has them)
            self.atoms = (*atoms, canonical(x) if share else x)
            return len(atoms)

    def append(self, step: Step, *, pin: bool = True) -> None:
        self.add(*step, pin=pin)

    def add(
        self,
        seq: int | None,
        ts: float,
        sid: str,
        kind: str,
        tool: str | None,
        caps: frozenset[str],
        event_id: str,
        dest: str | None,
        *,
        pin: bool = True,
    ) -> None:
        """Append the step of these fields (:meth:`append` without building a :class:`Step`).

        Hot path (once per event): the atom lookups are inlined (``list.index`` first; the
        table grows only on a miss), the event id is encoded once for the record and the pins,
        and a UUID id (most are) is converted inline.
        """
        # the id first: a long one takes its place in the table before the fields
        raw = _uuid_bytes(event_id) if len(event_id) == 36 else None
        if raw is not None:
            n, eid = _ID_UUID, raw
        else:
            n, eid = self._id(event_id)
        atoms = self.atoms  # (a miss makes a new table: read it again after one)
        try:
            s = atoms.index(sid)
        except ValueError:
            s = self._atom(sid, share=False)
            atoms = self.atoms
        # one atom for the step's kind, tool and capabilities: shared by every session (they
        # repeat a few), and three record fields and table entries fewer
        shape = _SHAPES.get((kind, tool, caps))
        if shape is None:
            shape = _new_shape(kind, tool, caps)
        try:
            k = atoms.index(shape)
        except ValueError:
            k = self._atom(shape, share=False)  # (shared already)
        if dest is None:
            d = _NONE
        else:
            try:
                d = self.atoms.index(dest)
            except ValueError:
                d = self._atom(dest)
        if seq is None or not -(2**63) < seq < 2**63:
            seq = _NO_SEQ
        rec = _REC.pack(seq, ts, s, k, d, n, eid)
        buf = self.buf
        size = _REC.size
        full = len(buf) >= self.cap * size
        if self.firsts is None and full:
            self._keep_firsts()  # the oldest record goes: its first steps must stay
        if pin and caps and self.firsts is not None:
            pinned = self.pinned
            for cap in caps:
                if cap not in pinned:
                    self._pin_id(cap, n, eid, sid, ts)
        if not full:
            self.buf = buf + rec
        else:
            i = self.head * size
            self.buf = b"".join((buf[:i], rec, buf[i + size :]))
            self.head = (self.head + 1) % self.cap
        if len(self.atoms) > 6 * self.cap + MAX_FIRSTS + 8:
            self._compact()

    def _id(self, event_id: str) -> tuple[int, bytes]:
        """(length, bytes) of an event id inline, (_ID_UUID, 16 bytes) of a UUID in its
        canonical form, or (_ID_IN_ATOMS, atom index) of a longer id."""
        if len(event_id) == 36:  # most ids are UUIDs: no need to encode them first
            raw = _uuid_bytes(event_id)
            if raw is not None:
                return _ID_UUID, raw
        eid = event_id.encode("utf-8", "surrogatepass")
        if len(eid) <= _ID_BYTES:
            return len(eid), eid
        raw = _uuid_bytes(event_id)
        if raw is not None:
            return _ID_UUID, raw
        return _ID_IN_ATOMS, self._atom(event_id).to_bytes(2, "little")

    def _pin(self, cap: str, event_id: str, session_id: str, ts: float) -> None:
        if len(self.pinned) < MAX_FIRSTS:
            n, eid = self._id(event_id)
            self._pin_id(cap, n, eid, session_id, ts)

    def _pin_id(self, cap: str, n: int, eid: bytes, session_id: str, ts: float) -> None:
        if len(self.pinned) >= MAX_FIRSTS:
            return
        first = _FIRST.pack(self._atom(session_id, share=False), ts, n, eid)
        self.firsts = first if self.firsts is None else self.firsts + first
        # shared: sessions of one agent meet their capabilities in the same few orders
        self.pinned = canonical((*self.pinned, canonical(cap)))

    def _keep_firsts(self) -> None:
        """Copy the first step of each capability out of the records (before the ring
        overwrites one): from now on they are pinned as they come."""
        firsts = self.first_seen()
        self.pinned, self.firsts = (), b""
        for cap, (eid, sid, ts) in firsts.items():
            self._pin(cap, eid, sid, ts)

    def first_seen(self) -> dict[str, tuple[str, str, float]]:
        """capability -> (event id, session id, time) of the first step that showed it."""
        if self.firsts is None:  # the ring has not moved on: the records hold them, in order
            found: dict[str, tuple[str, str, float]] = {}
            a, size = self.atoms, _REC.size
            for i in range(self.count):
                _seq, ts, sid, k, _d, n, eid = _REC.unpack_from(self.buf, i * size)
                for cap in a[k][2]:
                    if cap not in found and len(found) < MAX_FIRSTS:
                        found[cap] = (_decode_id(a, n, eid), a[sid], ts)
            return found
        return {
            cap: (_decode_id(self.atoms, n, eid), self.atoms[sid], ts)
            for cap, (sid, ts, n, eid) in zip(
                self.pinned, _FIRST.iter_unpack(self.firsts), strict=True
            )
        }

    def _compact(self) -> None:
        """Forget atoms no record points at any more (after the ring overwrote them)."""
        steps, firsts = list(self), self.first_seen()
        self.buf, self.atoms, self.head = b"", (), 0
        self.pinned, self.firsts = (), b""  # the records no longer hold every first step
        for cap, (eid, sid, ts) in firsts.items():
            self._pin(cap, eid, sid, ts)
        for s in steps:
            self.append(s, pin=False)

    def _unpack(self, i: int) -> Step:
        seq, ts, sid, k, dest, n, eid = _REC.unpack_from(self.buf, i * _REC.size)
        a = self.atoms
        kind, tool, caps = a[k]
        return Step(
            None if seq == _NO_SEQ else seq,
            ts,
            a[sid],
            kind,
            tool,
            caps,
            _decode_id(a, n, eid),
            None if dest == _NONE else a[dest],
        )

    def __iter__(self) -> Iterator[Step]:
        count = self.count
        for k in range(count):
            yield self._unpack((self.head + k) % count if count == self.cap else k)

    def __len__(self) -> int:
        return self.count

    def __getstate__(self) -> tuple[Any, ...]:
        # the layout the log had with a bytearray and a list (code before reads it)
        return (
            LOG_VERSION,
            self.cap,
            self.buf,
            list(self.atoms),
            self.head,
            self.count,
            self.pinned,
            self.firsts,
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if len(state) == 7:  # the first layout: 36-byte ids inline
            self._load_v1(state)
            return
        if state[0] in (2, 3):
            self._load_v3(state)
            return
        if state[0] != LOG_VERSION:
            raise ValueError(f"step log of layout version {state[0]} is not supported")
        _, self.cap, buf, atoms, self.head, _count, self.pinned, firsts = state
        self.buf = bytes(buf)
        self.atoms = tuple(atoms)
        self.firsts = None if firsts is None else bytes(firsts)

    def _load_v3(self, state: tuple[Any, ...]) -> None:
        """A log of versions 2 and 3 (kind, tool and capabilities as three atoms): its steps
        and first steps, in today's records."""
        _, cap, buf, atoms, head, count, pinned, firsts = state
        buf, atoms = bytes(buf), tuple(atoms)
        steps = []
        for k in [(head + k) % count if count == cap else k for k in range(count)]:
            rec = _REC_V3.unpack_from(buf, k * _REC_V3.size)
            steps.append(_old_step(atoms, rec, _decode_id(atoms, rec[7], rec[8])))
        self.__init__(cap)  # type: ignore[misc]
        if firsts is not None:  # pinned as they came (else: the records hold them)
            self.firsts = b""
            for cap_name, (sid, ts, n, eid) in zip(
                pinned, _FIRST.iter_unpack(bytes(firsts)), strict=True
            ):
                self._pin(cap_name, _decode_id(atoms, n, eid), atoms[sid], ts)
        for step in steps:
            self.append(step, pin=False)

    def _load_v1(self, state: tuple[Any, ...]) -> None:
        cap, buf, atoms, head, count, pinned, firsts = state
        old = [_REC_V1.unpack_from(buf, i * _REC_V1.size) for i in range(count)]
        order = [(head + k) % count if count == cap else k for k in range(count)]

        def text(n: int, eid: bytes) -> str:
            if n == _ID_IN_ATOMS:
                return str(atoms[int.from_bytes(eid[:2], "little")])
            return eid[:n].decode("utf-8", "surrogatepass")

        self.__init__(cap)  # type: ignore[misc]
        self.firsts = b""  # pinned as the layout kept them (its steps are added unpinned)
        for cap_name, (sid, ts, n, eid) in zip(
            pinned, _FIRST_V1.iter_unpack(firsts or b""), strict=True
        ):
            self._pin(cap_name, text(n, eid), atoms[sid], ts)
        for k in order:
            rec = old[k]
            self.append(_old_step(atoms, rec, text(rec[7], rec[8])), pin=False)


#: the step shapes (kind, tool, capabilities) logs share, in a bounded table of their own (it
#: starts over when full): tool names come from agents, and a flood of new names must neither
#: grow it without end nor push shared values out of ``detectors.intern``'s
MAX_SHAPES = 4096
_SHAPES: dict[tuple[str, str | None, frozenset[str]], tuple[str, str | None, frozenset[str]]] = {}


def _new_shape(
    kind: str, tool: str | None, caps: frozenset[str]
) -> tuple[str, str | None, frozenset[str]]:
    if len(_SHAPES) >= MAX_SHAPES:
        _SHAPES.clear()
    shape = (canonical(kind), canonical(tool), canonical(caps))
    _SHAPES[shape] = shape
    return shape


def _old_step(atoms: tuple[Any, ...], rec: tuple[Any, ...], event_id: str) -> Step:
    """A step of a layout 1-3 record (seq, ts, session, kind, tool, capabilities and
    destination as atoms; the event id, decoded by the caller as its layout stored it)."""
    seq, ts, sid, kind, tool, caps, dest = rec[:7]
    return Step(
        None if seq == _NO_SEQ else seq,
        ts,
        atoms[sid],
        atoms[kind],
        None if tool == _NONE else atoms[tool],
        atoms[caps],
        event_id,
        None if dest == _NONE else atoms[dest],
    )


def _decode_id(atoms: tuple[Any, ...], n: int, eid: bytes) -> str:
    """An event id as a record keeps it (see ``StepLog._id``), with the log's ``atoms``."""
    if n == _ID_UUID:
        h = eid.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if n == _ID_IN_ATOMS:
        return str(atoms[int.from_bytes(eid[:2], "little")])
    return eid[:n].decode("utf-8", "surrogatepass")


def _uuid_bytes(text: str) -> bytes | None:
    """The 16 bytes of a UUID written in its canonical form (lower-case, hyphenated), or
    None: only an id that prints back exactly is stored in binary."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    h = text.replace("-", "")  # the four hyphens checked above, and no other (length 32)
    if len(h) != 32:
        return None
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        return None
    return raw if raw.hex() == h else None


def compact_id(event_id: str) -> str | bytes:
    """The event id in 16 bytes when it is a UUID in canonical form (a 49-byte object instead
    of an 85-byte string), else the id itself; :func:`full_id` gives it back."""
    raw = _uuid_bytes(event_id)
    return event_id if raw is None else raw


def full_id(compact: str | bytes) -> str:
    """The event id :func:`compact_id` was given."""
    if isinstance(compact, bytes):
        h = compact.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return compact


#: event ids kept together (:func:`add_id`): 16 bytes each while all are canonical UUIDs, else
#: a tuple of the ids as they were written
Ids = bytes | tuple[str, ...]
#: no event ids yet
NO_IDS = b""


def add_id(ids: Ids, event_id: str) -> Ids:
    """``ids`` with ``event_id`` after them: a partial match's steps keep their ids in one
    ``bytes`` object (16 bytes each) instead of a tuple of 85-byte strings; any id that is not
    a canonical UUID turns them into a tuple of strings. :func:`ids_of` reads them."""
    if type(ids) is bytes:
        raw = _uuid_bytes(event_id)
        if raw is not None:
            return ids + raw
        ids = ids_of(ids)
    return (*ids, event_id)


def ids_of(ids: Ids) -> tuple[str, ...]:
    """The event ids :func:`add_id` kept, as strings, in order (a tuple passes through)."""
    if type(ids) is bytes:
        return tuple(full_id(ids[i : i + _ID_BYTES]) for i in range(0, len(ids), _ID_BYTES))
    return ids  # type: ignore[return-value]


def id_key(event_id: str) -> int:
    """A 64-bit key of an event id, the same in every process (``hash()`` is not)."""
    digest = blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


#: below this many ids a linear scan of the ring is as fast as a sorted lookup
_SCAN = 32
#: at most this many keys are kept as bare ``bytes`` (8 little-endian bytes each, in insertion
#: order), without a :class:`RecentIds`: most sessions see a handful of events, and the object
#: and its array cost ~110 bytes a session more than the bytes
SMALL_IDS = _SCAN
_KEY = struct.Struct("<q")
#: ``key_bytes(key)``: the 8 bytes a key is kept as in bare bytes
key_bytes = _KEY.pack


def remember(seen: RecentIds | bytes | None, key: int, cap: int) -> RecentIds | bytes:
    """The dedup keys ``seen`` with ``key`` added: what to keep from now on.

    Up to :data:`SMALL_IDS` keys (when ``cap`` allows as many) they are bare ``bytes``
    (:func:`seen_has` finds a key in them); beyond, a :class:`RecentIds` of ``cap`` takes them
    over, so a lookup stays O(log n).
    """
    if seen is None:
        if cap > SMALL_IDS:
            return _KEY.pack(key)
        seen = RecentIds(cap)
    elif type(seen) is bytes:
        n = len(seen) // _KEY.size
        if n < SMALL_IDS and n < cap:
            return seen + _KEY.pack(key)
        ring = RecentIds(cap)
        for (k,) in list(_KEY.iter_unpack(seen))[-cap:]:
            ring.add(k)
        seen = ring
    seen.add(key)  # type: ignore[union-attr]
    return seen  # type: ignore[return-value]


def seen_has(seen: RecentIds | bytes | None, key: int) -> bool:
    """Whether the dedup keys ``seen`` (as :func:`remember` keeps them) hold ``key``."""
    if seen is None:
        return False
    if type(seen) is not bytes:
        return key in seen
    kb = _KEY.pack(key)
    i = seen.find(kb)
    while i > 0 and i % 8:  # only whole keys count, not 8 bytes across two of them
        i = seen.find(kb, i + 1)
    return i >= 0


class RecentIds:
    """The last ``cap`` event-id keys (see the module docstring); ``key in ids`` is O(log n)."""

    __slots__ = ("cap", "ring", "head", "index")

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        #: keys in insertion order (a ring once full: ``head`` is the oldest)
        self.ring = array("q")
        self.head = 0
        #: the same keys sorted, built once the ring holds more than ``_SCAN``
        self.index: array[int] | None = None

    def __contains__(self, key: int) -> bool:
        index = self.index
        if index is None:
            return key in self.ring
        i = bisect_left(index, key)
        return i < len(index) and index[i] == key

    def add(self, key: int) -> None:
        ring, index = self.ring, self.index
        if len(ring) < self.cap:
            ring.append(key)
            if index is not None:
                index.insert(bisect_left(index, key), key)
            elif len(ring) > _SCAN:
                self.index = array("q", sorted(ring))
            return
        old = ring[self.head]
        ring[self.head] = key
        self.head = (self.head + 1) % self.cap
        if index is not None:
            del index[bisect_left(index, old)]
            index.insert(bisect_left(index, key), key)

    def __len__(self) -> int:
        return len(self.ring)

    def __getstate__(self) -> tuple[int, bytes, int]:
        ring = self.ring
        if sys.byteorder == "big":  # checkpoints are little-endian on every machine
            ring = array("q", ring)
            ring.byteswap()
        return (self.cap, ring.tobytes(), self.head)

    def __setstate__(self, state: tuple[int, bytes, int]) -> None:
        self.cap, raw, self.head = state
        self.ring = array("q")
        self.ring.frombytes(raw)
        if sys.byteorder == "big":
            self.ring.byteswap()
        self.index = array("q", sorted(self.ring)) if len(self.ring) > _SCAN else None
