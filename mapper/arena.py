"""COSMA's baseline: TFLite's offline greedy-by-size arena with a replacement policy, on a fixed order.

Under resident semantics (:class:`mapper.joint.Semantics`: every operand of the running layer is on
chip at its step), :func:`tflite_arena` plans a fixed order in two passes, as COSMA's baseline does:

1. **Replacement.** Walk the steps with a byte budget; before a layer runs, its inputs that are not on
   chip are loaded and its outputs take room; while the residents exceed the budget, one that the layer
   does not use is evicted (an activation is written back once, the first time; it is reloaded at its
   next use). ``belady``: the resident whose next use is farthest away; ``min-bytes``: the smallest
   resident whose eviction alone makes enough room, else the largest and again (the fewest bytes
   spilled for this step). A tensor leaves the chip after its last use.
2. **Placement.** The on-chip intervals this leaves are placed by TFLite's greedy-by-size rule: largest
   first, each at the lowest offset where it overlaps no placed interval that is live at the same time.

If the placement needs more than the budget (fragmentation), the replacement pass runs again with the
budget lowered by the excess, until the placement fits or the budget cannot hold one layer's operands:
then the arena fails (``None``), as TFLite's would at that budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from accel.errors import MappingError
from mapper.allocate import place_in_order
from mapper.joint import JointProblem, JointResult, Semantics, _result, _step_of

__all__ = ["POLICIES", "tflite_arena", "greedy_by_size"]

_log = logging.getLogger(__name__)

POLICIES = ("belady", "min-bytes")


def _replace(problem: JointProblem, order: Sequence[int], budget: int,
             policy: str) -> dict[int, list[list[int]]] | None:
    """On-chip runs per tensor (``[first, last]`` steps), or None if some step cannot fit its operands."""
    step_of = _step_of(order)
    uses = [sorted({step_of[c] for c in t.consumers}) for t in problem.tensors]
    operands: list[list[int]] = [[] for _ in order]
    for ti, t in enumerate(problem.tensors):
        for s in uses[ti]:
            operands[s].append(ti)
        if t.producer is not None:
            operands[step_of[t.producer]].append(ti)
    size = [t.size_bytes for t in problem.tensors]
    runs: dict[int, list[list[int]]] = {ti: [] for ti in range(len(problem.tensors))}
    resident: set[int] = set()
    used = 0

    def next_use(ti: int, s: int) -> int:
        return next((u for u in uses[ti] if u > s), 1 << 60)

    for s in range(len(order)):
        need = set(operands[s])
        for ti in need - resident:
            resident.add(ti)
            used += size[ti]
            runs[ti].append([s, s])
        while used > budget:
            victims = [ti for ti in resident if ti not in need]
            if not victims:
                return None
            if policy == "belady":
                victim = max(victims, key=lambda ti: (next_use(ti, s), size[ti], -ti))
            elif policy == "min-bytes":
                excess = used - budget
                enough = [ti for ti in victims if size[ti] >= excess]
                victim = (min(enough, key=lambda ti: (size[ti], -next_use(ti, s), ti)) if enough
                          else max(victims, key=lambda ti: (size[ti], next_use(ti, s), -ti)))
            else:
                raise MappingError(f"Replacement policy must be one of {', '.join(POLICIES)}, not {policy!r}")
            resident.discard(victim)
            used -= size[victim]
            runs[victim][-1][1] = s - 1
            if runs[victim][-1][1] < runs[victim][-1][0]:
                runs[victim].pop()
        for ti in resident:
            runs[ti][-1][1] = s
        for ti in list(resident):
            if next_use(ti, s) == 1 << 60:
                resident.discard(ti)
                used -= size[ti]
    return runs


def greedy_by_size(blocks: Sequence[tuple[int, int, int]]) -> list[int]:
    """TFLite's greedy-by-size offsets for ``(size, first, last)`` blocks: largest first, lowest gap."""
    return place_in_order(blocks, sorted(range(len(blocks)), key=lambda i: (-blocks[i][0], blocks[i][1], i)))


def tflite_arena(problem: JointProblem, order: Sequence[str], policy: str = "belady") -> JointResult | None:
    """COSMA's baseline on ``order`` (see the module docstring), or None if the arena does not fit."""
    if problem.semantics is not Semantics.RESIDENT:
        raise MappingError("The TFLite arena baseline plans resident semantics (every operand on chip)")
    began = time.perf_counter()
    idx = problem.indices(order)
    budget = problem.capacity_bytes
    attempts = 0
    while budget > 0:
        attempts += 1
        runs = _replace(problem, idx, budget, policy)
        if runs is None:
            _log.info("%s: TFLite arena (%s) fails at %d B", problem.name, policy, problem.capacity_bytes)
            return None
        blocks = [(problem.tensors[ti].size_bytes, a, b, ti) for ti, rs in runs.items() for a, b in rs]
        offsets = greedy_by_size([(size, a, b) for size, a, b, _ in blocks])
        top = max((o + b[0] for o, b in zip(offsets, blocks, strict=True)), default=0)
        if top <= problem.capacity_bytes:
            intervals: dict[str, list[tuple[int, int, int]]] = {t.name: [] for t in problem.tensors}
            for o, (_, a, b, ti) in zip(offsets, blocks, strict=True):
                intervals[problem.tensors[ti].name].append((a, b, o))
            return _result(problem, idx, intervals, "heuristic", 0.0, began, policy=policy, attempts=attempts,
                           budget_bytes=budget)
        budget -= top - problem.capacity_bytes
    return None


def online_arena(problem: JointProblem, order: Sequence[str], policy: str = "belady",
                 guide: Mapping[str, set[int]] | None = None) -> JointResult:
    """A plan that always fits (resident semantics, budget at least ``M_R``): the steps in order, each
    missing operand placed at the lowest free offset; while none fits, residents the layer does not use
    are evicted by ``policy`` (see :func:`tflite_arena`); if the layer's own operands fragment the space,
    they are all re-placed from offset 0 (the ones already on chip move: evicted and reloaded).

    With a ``guide`` (per tensor, the steps an ILP keeps it on chip), a resident leaves as soon as the
    guide lets it go, and residents the guide does not keep at the next step are evicted first."""
    if problem.semantics is not Semantics.RESIDENT:
        raise MappingError("The online arena plans resident semantics (every operand on chip)")
    began = time.perf_counter()
    idx = problem.indices(order)
    step_of = _step_of(idx)
    uses = [sorted({step_of[c] for c in t.consumers}) for t in problem.tensors]
    size = [t.size_bytes for t in problem.tensors]
    operands: list[list[int]] = [[] for _ in idx]
    for ti, t in enumerate(problem.tensors):
        for s in uses[ti]:
            operands[s].append(ti)
        if t.producer is not None:
            operands[step_of[t.producer]].append(ti)
    cap = problem.capacity_bytes
    place: dict[int, tuple[int, int]] = {}  # tensor -> (offset, first step of its current interval)
    intervals: dict[str, list[tuple[int, int, int]]] = {t.name: [] for t in problem.tensors}

    def close(ti: int, last: int) -> None:
        off, first = place.pop(ti)
        if last >= first:
            intervals[problem.tensors[ti].name].append((first, last, off))

    def next_use(ti: int, s: int) -> int:
        return next((u for u in uses[ti] if u > s), 1 << 60)

    def hole(sz: int) -> int | None:
        cursor = 0
        for lo, hi in sorted((o, o + size[t]) for t, (o, _) in place.items()):
            if lo >= cursor + sz:
                return cursor
            cursor = max(cursor, hi)
        return cursor if cursor + sz <= cap else None

    for s in range(len(idx)):
        need = sorted(set(operands[s]), key=lambda ti: -size[ti])
        for ti in need:
            if ti in place:
                continue
            offset = hole(size[ti])
            while offset is None:
                victims = [v for v in place if v not in need]
                if not victims:
                    break
                kept_now = {v: guide is None or s in guide.get(problem.tensors[v].name, set()) for v in victims}
                if policy == "belady":
                    victim = max(victims, key=lambda v: (not kept_now[v], next_use(v, s), size[v], -v))
                else:
                    victim = max(victims, key=lambda v: (not kept_now[v], size[v], next_use(v, s), -v))
                close(victim, s - 1)
                offset = hole(size[ti])
            if offset is None:  # the operands fragment the space: re-place them all from 0
                for v in [v for v in place if v in need]:
                    close(v, s - 1)
                cursor = 0
                for v in need:
                    place[v] = (cursor, s)
                    cursor += size[v]
                break
            place[ti] = (offset, s)
        for ti in [t for t in place if next_use(t, s) == 1 << 60]:
            close(ti, s)
        if guide is not None:  # follow the ILP: let go what it does not keep at the next step
            for ti in [t for t in place if s + 1 not in guide.get(problem.tensors[t].name, ())]:
                close(ti, s)
    for ti in list(place):
        close(ti, len(idx) - 1)
    return _result(problem, idx, intervals, "heuristic", 0.0, began, method=f"online-{policy}")
