"""Allocations of a :class:`~mapper.lifetimes.MemoryProblem`: the result type, its checker, the baselines.

An :class:`Allocation` says, per tensor, where it sits on chip and when (``intervals``: ``(first_step,
last_step, offset)``), and at which steps it is read from or written to DRAM. Every allocator returns
one; :func:`check_allocation` proves it valid from the problem alone, without trusting the allocator.

**Traffic model.** A tensor resident from step ``a`` to ``b`` at ``offset`` costs nothing while
resident. Reads: one at the start of each on-chip interval that does not start at the producer step
(a load), and one at each use step the tensor is not carried into from the step before (a streamed
read by the layer's tiling). Writes: an activation is written to DRAM once if any read happens or it
is a graph output — at its producer step (streamed out) or at the end of an on-chip interval (evicted).
So a tensor kept on chip from producer to last use costs nothing, an evicted one costs its size once
plus once per reload, and one never resident costs one write and one read per consuming step.

**Baselines** (all in the gap model of :mod:`mapper.lifetimes`):

``none``
    nothing resident (SCALE-Sim style).
``greedy``
    an online arena in schedule order: at each step the tensors starting a gap are placed largest
    first into the best-fitting free hole (TFLite's greedy-by-size rule), evicting the least recently
    used residents not needed at that step while no hole fits (LRU replacement).
``firstfit``
    offline, gaps in order of their start step: each goes to the lowest free offset (the same offset
    as its previous gap if that one stayed on chip), or stays in DRAM if none fits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from accel.errors import MappingError
from mapper.lifetimes import MemoryProblem, MemoryTensor

__all__ = [
    "TensorAllocation", "Allocation", "check_allocation", "allocation_from_gaps",
    "allocate_none", "allocate_greedy", "allocate_firstfit", "pack_runs", "kept_gaps", "place_in_order",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorAllocation:
    """Where one tensor lives: on-chip intervals ``(first_step, last_step, offset)`` and DRAM steps."""

    name: str
    size_bytes: int
    intervals: tuple[tuple[int, int, int], ...] = ()
    read_steps: tuple[int, ...] = ()
    write_steps: tuple[int, ...] = ()

    @property
    def dram_read_bytes(self) -> int:
        return self.size_bytes * len(self.read_steps)

    @property
    def dram_write_bytes(self) -> int:
        return self.size_bytes * len(self.write_steps)

    def offset_at(self, step: int) -> int | None:
        """The tensor's byte offset at ``step``, or ``None`` if it is not on chip then."""
        for first, last, offset in self.intervals:
            if first <= step <= last:
                return offset
        return None


@dataclass(frozen=True)
class Allocation:
    """One allocator's answer. ``objective``, ``bound`` and ``gap`` are ``None`` for heuristics.

    ``objective`` and ``bound`` are in non-compulsory DRAM bytes; ``gap`` is ``(objective - bound) /
    objective`` (0 when both are 0); ``status`` is the solver's word (``optimal``, ``time_limit``, ...)
    or ``heuristic``.
    """

    method: str
    tensors: Mapping[str, TensorAllocation]
    dram_read_bytes: int
    dram_write_bytes: int
    compulsory_dram_bytes: int
    status: str = "heuristic"
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    solve_time_s: float | None = None
    windows: int = 1
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def non_compulsory_bytes(self) -> int:
        return self.dram_bytes - self.compulsory_dram_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary plus every tensor's intervals and DRAM steps."""
        return {
            "method": self.method, "status": self.status, "dram_bytes": self.dram_bytes,
            "dram_read_bytes": self.dram_read_bytes, "dram_write_bytes": self.dram_write_bytes,
            "compulsory_dram_bytes": self.compulsory_dram_bytes, "non_compulsory_bytes": self.non_compulsory_bytes,
            "objective": self.objective, "bound": self.bound, "gap": self.gap, "solve_time_s": self.solve_time_s,
            "windows": self.windows,
            "tensors": {name: {"size_bytes": t.size_bytes, "intervals": [list(i) for i in t.intervals],
                               "read_steps": list(t.read_steps), "write_steps": list(t.write_steps)}
                        for name, t in self.tensors.items()},
        }


# -- from kept gaps to an allocation --------------------------------------------------------------

def allocation_from_gaps(problem: MemoryProblem, kept: Mapping[int, int], method: str, **info: Any) -> Allocation:
    """The allocation in which exactly the gaps ``kept`` (gap id -> offset) stay on chip.

    Consecutive kept gaps of a tensor form one interval and must share their offset.
    """
    tensors = {}
    reads = writes = 0
    for ti, t in enumerate(problem.tensors):
        gap_ids = problem.tensor_gaps[ti]
        ev = t.events
        intervals: list[tuple[int, int, int]] = []
        read_steps: list[int] = [] if t.is_activation or not ev else [ev[0]]
        for j, gid in enumerate(gap_ids):
            if gid in kept:
                if intervals and j > 0 and gap_ids[j - 1] in kept:
                    first, _, offset = intervals[-1]
                    if offset != kept[gid]:
                        raise MappingError(f"Tensor {t.name!r}: gaps {j - 1} and {j} are both on chip but at "
                                           f"offsets {offset} and {kept[gid]}")
                    intervals[-1] = (first, ev[j + 1], offset)
                else:
                    intervals.append((ev[j], ev[j + 1], kept[gid]))
            else:
                read_steps.append(ev[j + 1])
        write_steps: list[int] = []
        if t.is_activation and (t.graph_output or len(read_steps) > 0):
            first_gap_kept = bool(gap_ids) and gap_ids[0] in kept
            write_steps.append(intervals[0][1] if first_gap_kept else ev[0])
        ta = TensorAllocation(t.name, t.size_bytes, tuple(intervals), tuple(read_steps), tuple(write_steps))
        tensors[t.name] = ta
        reads += ta.dram_read_bytes
        writes += ta.dram_write_bytes
    return Allocation(method=method, tensors=tensors, dram_read_bytes=reads, dram_write_bytes=writes,
                      compulsory_dram_bytes=problem.compulsory_dram_bytes, **info)


def kept_gaps(problem: MemoryProblem, allocation: Allocation) -> dict[int, int]:
    """The gaps (id -> offset) an allocation keeps on chip: those inside one of its intervals."""
    kept = {}
    for gid_list, t in zip(problem.tensor_gaps, problem.tensors, strict=True):
        ta = allocation.tensors.get(t.name)
        if ta is None:
            continue
        for gid in gid_list:
            g = problem.gaps[gid]
            for first, last, offset in ta.intervals:
                if first <= g.start and g.end <= last:
                    kept[gid] = offset
                    break
    return kept


# -- the checker ----------------------------------------------------------------------------------

def _step_name(problem: MemoryProblem, step: int) -> str:
    return f"step {step} (layer {problem.steps[step]!r})"


def _required_reads(t: MemoryTensor, intervals: Iterable[tuple[int, int, int]]) -> list[int]:
    """Steps at which ``t`` must come from DRAM given its on-chip intervals."""
    needed = set()
    ivs = list(intervals)
    for first, _, _ in ivs:
        if first != t.producer_step:
            needed.add(first)
    for u in t.use_steps:
        if not any(first < u <= last for first, last, _ in ivs):
            needed.add(u)
    return sorted(needed)


def check_allocation(problem: MemoryProblem, allocation: Allocation) -> None:
    """Prove ``allocation`` valid for ``problem``; raise :class:`MappingError` on the first violation.

    Checks: every tensor is allocated once with its size; intervals are disjoint, inside the tensor's
    lifetime, at non-negative offsets; every use step finds the tensor on chip from the step before or
    read from DRAM there, and every load reads DRAM; activations are written once when anything reads
    them back or they are graph outputs, no later than the first read, from the producer step or a
    step where they are on chip; at every step the residents fit ``capacity - reserved`` and no two
    overlap in address; the totals equal the sum over tensors.
    """
    names = {t.name for t in problem.tensors}
    extra = sorted(set(allocation.tensors) - names)
    if extra:
        raise MappingError(f"Allocation has tensors the problem does not: {extra}")
    residents: list[list[tuple[int, int, str]]] = [[] for _ in problem.steps]
    reads = writes = 0
    for t in problem.tensors:
        ta = allocation.tensors.get(t.name)
        if ta is None:
            raise MappingError(f"Tensor {t.name!r} has no allocation")
        if ta.size_bytes != t.size_bytes:
            raise MappingError(f"Tensor {t.name!r}: allocated {ta.size_bytes} B, but it is {t.size_bytes} B")
        ev = t.events
        previous_last = -1
        for first, last, offset in sorted(ta.intervals):
            if not ev or first < ev[0] or last > ev[-1] or first > last:
                raise MappingError(f"Tensor {t.name!r}: on-chip interval [{first}, {last}] must lie within its "
                                   f"lifetime [{ev[0] if ev else '-'}, {ev[-1] if ev else '-'}]")
            if first <= previous_last:
                raise MappingError(f"Tensor {t.name!r}: on-chip intervals overlap at step {first}")
            if not isinstance(offset, int) or offset < 0:
                raise MappingError(f"Tensor {t.name!r}: offset must be a non-negative integer, not {offset!r}")
            previous_last = last
            for s in range(first, last + 1):
                residents[s].append((offset, offset + t.size_bytes, t.name))
        needed = _required_reads(t, ta.intervals)
        missing = sorted(set(needed) - set(ta.read_steps))
        if missing:
            raise MappingError(f"Tensor {t.name!r} is used or loaded at {_step_name(problem, missing[0])} but is "
                               f"neither on chip from the step before nor read from DRAM there")
        if sorted(ta.read_steps) != needed:
            raise MappingError(f"Tensor {t.name!r}: reads DRAM at steps {sorted(ta.read_steps)}, but only "
                               f"{needed} need it")
        must_write = t.is_activation and (t.graph_output or bool(needed))
        if len(ta.write_steps) != int(must_write):
            raise MappingError(f"Tensor {t.name!r}: must be written to DRAM {int(must_write)} time(s), "
                               f"not {len(ta.write_steps)}")
        if must_write:
            w = ta.write_steps[0]
            if w != t.producer_step and ta.offset_at(w) is None:
                raise MappingError(f"Tensor {t.name!r} is written to DRAM at {_step_name(problem, w)} where it "
                                   f"is neither produced nor on chip")
            if needed and w > needed[0]:
                raise MappingError(f"Tensor {t.name!r} is read from DRAM at step {needed[0]} before it is "
                                   f"written there at step {w}")
        reads += ta.dram_read_bytes
        writes += ta.dram_write_bytes
    for step, items in enumerate(residents):
        available = problem.available_bytes(step)
        items.sort()
        for k, (start, end, name) in enumerate(items):
            if end > available:
                raise MappingError(f"Tensor {name!r} at [{start}, {end}) exceeds the {available} B available at "
                                   f"{_step_name(problem, step)} (capacity {problem.capacity_bytes} B - "
                                   f"reserved {problem.reserved_bytes[step]} B)")
            if k and start < items[k - 1][1] and end > start and items[k - 1][1] > items[k - 1][0]:
                other = items[k - 1]
                raise MappingError(f"Tensors {other[2]!r} at [{other[0]}, {other[1]}) and {name!r} at "
                                   f"[{start}, {end}) overlap at {_step_name(problem, step)}")
    if (reads, writes) != (allocation.dram_read_bytes, allocation.dram_write_bytes):
        raise MappingError(f"Allocation claims {allocation.dram_read_bytes} B read and "
                           f"{allocation.dram_write_bytes} B written, but its tensors add up to {reads} B "
                           f"and {writes} B")
    if allocation.compulsory_dram_bytes != problem.compulsory_dram_bytes:
        raise MappingError(f"Allocation claims {allocation.compulsory_dram_bytes} B of compulsory traffic, "
                           f"the problem has {problem.compulsory_dram_bytes} B")


# -- placement helpers ----------------------------------------------------------------------------

class _Arena:
    """Placed blocks per step, to find free holes over a step interval."""

    def __init__(self, steps: int) -> None:
        self.by_step: list[list[tuple[int, int, int]]] = [[] for _ in range(steps)]  # (start, end, owner)

    def blocks(self, first: int, last: int, owner: int = -1) -> list[tuple[int, int]]:
        seen = set()
        for s in range(first, last + 1):
            for start, end, who in self.by_step[s]:
                if who != owner:
                    seen.add((start, end))
        return sorted(seen)

    def holes(self, first: int, last: int, limit: int, owner: int = -1) -> list[tuple[int, int]]:
        """Free ``[start, end)`` ranges below ``limit`` over steps ``first..last``."""
        out, cursor = [], 0
        for start, end in self.blocks(first, last, owner):
            if start > cursor:
                out.append((cursor, min(start, limit)))
            cursor = max(cursor, end)
            if cursor >= limit:
                break
        if cursor < limit:
            out.append((cursor, limit))
        return [(a, b) for a, b in out if b > a]

    def is_free(self, first: int, last: int, offset: int, size: int, limit: int, owner: int = -1) -> bool:
        if offset + size > limit:
            return False
        return all(end <= offset or start >= offset + size for start, end in self.blocks(first, last, owner))

    def place(self, first: int, last: int, offset: int, size: int, owner: int) -> None:
        if size:
            for s in range(first, last + 1):
                self.by_step[s].append((offset, offset + size, owner))

    def remove(self, first: int, last: int, owner: int) -> None:
        for s in range(first, last + 1):
            self.by_step[s] = [b for b in self.by_step[s] if b[2] != owner]


def _free(occupied: Mapping[int, tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Free ``[start, end)`` holes below ``limit`` between the occupied blocks."""
    out, cursor = [], 0
    for start, end in sorted(occupied.values()):
        if start > cursor:
            out.append((cursor, min(start, limit)))
        cursor = max(cursor, end)
    if cursor < limit:
        out.append((cursor, limit))
    return [(a, b) for a, b in out if b > a]


def _lowest_fit(holes: list[tuple[int, int]], size: int) -> int | None:
    for start, end in holes:
        if end - start >= size:
            return start
    return None


def _best_fit(holes: list[tuple[int, int]], size: int) -> int | None:
    fitting = [(end - start, start) for start, end in holes if end - start >= size]
    return min(fitting)[1] if fitting else None


def pack_runs(problem: MemoryProblem, runs: list[tuple[int, ...]],
              order: str | Mapping[tuple[int, ...], Any] = "start") -> dict[int, int]:
    """Offsets for runs (tuples of consecutive gap ids of one tensor), placed lowest-first.

    Runs that find no room are left out (their gaps go to DRAM). ``order``: ``start`` (by first step,
    larger first on ties), ``size`` (largest first), ``length`` (longest-lived first), or a mapping
    from run to a sort key. Placing runs in the order of any feasible set of offsets, each at the
    lowest free offset, never raises an offset, so it keeps that solution feasible.
    """
    gaps = problem.gaps
    if isinstance(order, Mapping):
        ranks = order

        def key(r: tuple[int, ...]) -> Any:
            return ranks[r]
    else:
        key = {
            "start": lambda r: (gaps[r[0]].start, -gaps[r[0]].size_bytes),
            "size": lambda r: (-gaps[r[0]].size_bytes, gaps[r[0]].start),
            "length": lambda r: (-(gaps[r[-1]].end - gaps[r[0]].start), -gaps[r[0]].size_bytes),
        }[order]
    arena = _Arena(len(problem.steps))
    kept: dict[int, int] = {}
    dropped: list[int] = []
    for run in sorted(runs, key=key):
        first, last = gaps[run[0]].start, gaps[run[-1]].end
        limit = min(gaps[g].limit_bytes for g in run)
        size = gaps[run[0]].size_bytes
        offset = _lowest_fit(arena.holes(first, last, limit), size)
        if offset is None:
            dropped.extend(run)
            continue
        arena.place(first, last, offset, size, gaps[run[0]].tensor)
        kept.update({g: offset for g in run})
    # salvage: the gaps of runs left out, one by one in schedule order (a shorter run may still fit)
    for gid in sorted(dropped, key=lambda i: (gaps[i].start, i)):
        g = gaps[gid]
        previous = problem.tensor_gaps[g.tensor][g.index - 1] if g.index else None
        if previous is not None and previous in kept:
            offset = kept[previous]
            if not arena.is_free(g.start, g.end, offset, g.size_bytes, g.limit_bytes, g.tensor):
                continue
        else:
            offset = _lowest_fit(arena.holes(g.start, g.end, g.limit_bytes, g.tensor), g.size_bytes)
            if offset is None:
                continue
        following = problem.tensor_gaps[g.tensor][g.index + 1] if g.index + 1 < len(
            problem.tensor_gaps[g.tensor]) else None
        if following is not None and following in kept and kept[following] != offset:
            continue  # would meet the next run of its tensor at another offset
        arena.place(g.start, g.end, offset, g.size_bytes, g.tensor)
        kept[gid] = offset
    return kept


# -- baselines ------------------------------------------------------------------------------------

def allocate_none(problem: MemoryProblem) -> Allocation:
    """Nothing on chip: every layer reads its inputs from DRAM and writes its outputs there."""
    start = time.perf_counter()
    return allocation_from_gaps(problem, {}, "none", solve_time_s=time.perf_counter() - start)


def allocate_firstfit(problem: MemoryProblem) -> Allocation:
    """First fit in schedule order (see the module docstring)."""
    start = time.perf_counter()
    arena = _Arena(len(problem.steps))
    kept: dict[int, int] = {}
    for g in sorted(problem.gaps, key=lambda g: (g.start, g.tensor, g.index)):
        if not g.allowed:
            continue
        previous = problem.tensor_gaps[g.tensor][g.index - 1] if g.index else None
        if previous is not None and previous in kept:
            offset: int | None = kept[previous]
            assert offset is not None
            if not arena.is_free(g.start, g.end, offset, g.size_bytes, g.limit_bytes, g.tensor):
                offset = None
        else:
            offset = _lowest_fit(arena.holes(g.start, g.end, g.limit_bytes, g.tensor), g.size_bytes)
        if offset is not None:
            arena.place(g.start, g.end, offset, g.size_bytes, g.tensor)
            kept[g.id] = offset
    return allocation_from_gaps(problem, kept, "firstfit", solve_time_s=time.perf_counter() - start)


def allocate_greedy(problem: MemoryProblem) -> Allocation:
    """Greedy-by-size into the best-fitting hole, step by step, with LRU eviction (module docstring)."""
    start = time.perf_counter()
    gaps = problem.gaps
    starting: list[list[int]] = [[] for _ in problem.steps]  # allowed gaps starting at each step
    for g in gaps:
        if g.allowed:
            starting[g.start].append(g.id)
    events_at: list[set[int]] = [set() for _ in problem.steps]
    for ti, t in enumerate(problem.tensors):
        for s in t.events:
            events_at[s].add(ti)
    resident: dict[int, tuple[int, int, int]] = {}  # tensor -> (offset, current gap id, last used step)
    kept: dict[int, int] = {}
    for step in range(len(problem.steps)):
        # a gap ending here kept its tensor on chip throughout; the tensor is still there at this step
        ending = {ti: r for ti, r in resident.items() if gaps[r[1]].end == step}
        for offset, gid, _ in ending.values():
            kept[gid] = offset
        occupied = {ti: (o, o + gaps[gid].size_bytes) for ti, (o, gid, _) in resident.items()}
        continuing: set[int] = set()
        for gid in sorted(starting[step], key=lambda i: (-gaps[i].size_bytes, i)):
            g = gaps[gid]
            previous = problem.tensor_gaps[g.tensor][g.index - 1] if g.index else None
            if previous is not None and previous in kept:
                offset: int | None = kept[previous]
                assert offset is not None
                end = offset + g.size_bytes
                if end > g.limit_bytes or any(a < end and b > offset for ti, (a, b) in occupied.items()
                                              if ti != g.tensor):
                    offset = None  # cannot stay where it is: goes to DRAM for this gap
            else:
                offset = _best_fit(_free(occupied, g.limit_bytes), g.size_bytes)
                while offset is None:
                    victims = [ti for ti in resident if ti not in ending and ti not in events_at[step]]
                    if not victims:
                        break
                    victim = min(victims, key=lambda ti: (resident[ti][2], ti))
                    del resident[victim]  # evicted (least recently used): its current gap goes to DRAM
                    del occupied[victim]
                    offset = _best_fit(_free(occupied, g.limit_bytes), g.size_bytes)
            if offset is not None:
                resident[g.tensor] = (offset, gid, step)
                occupied[g.tensor] = (offset, offset + g.size_bytes)
                continuing.add(g.tensor)
        for ti in ending:
            if ti not in continuing:
                del resident[ti]
    return allocation_from_gaps(problem, kept, "greedy", solve_time_s=time.perf_counter() - start)


def place_in_order(blocks: Sequence[tuple[int, int, int, *tuple[object, ...]]], order: Iterable[int]) -> list[int]:
    """Offsets of ``(size, first, last, ...)`` blocks placed one by one in ``order``, each at the lowest
    offset where it overlaps no block placed before it that is live at a common step."""
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets = [0] * len(blocks)
    for i in order:
        size, first, last = blocks[i][:3]
        offset = 0
        for lo, hi, _, _ in sorted(p for p in placed if p[2] <= last and first <= p[3]):
            if lo >= offset + size:
                break
            offset = max(offset, hi)
        offsets[i] = offset
        placed.append((offset, offset + size, first, last))
    return offsets
