"""Local search over operator orders, ranked by the joint ILP: for graphs too big to order in one ILP.

:func:`mapper.joint.solve_joint` over every order is exact but only solves small graphs; the banded
ILP (every layer within a few steps of the incumbent) reaches only short moves. :func:`window_search`
adds long ones: it takes a *window* of consecutive steps of the incumbent order, lets the layers in it
take any order among themselves (which includes every interleaving of the independent branches that
run there) and keeps everything outside pinned, and asks an ILP for the best order and allocation
with that freedom:

* under resident semantics (COSMA's), the capacity-only joint ILP over the whole graph with the window
  free, its residency then placed (:func:`mapper.joint.relax_and_pack`), started from the incumbent;
* under stream semantics, the full joint ILP with offsets (:func:`mapper.joint.solve_joint`), started
  from the incumbent.

Windows cannot reach a layer that should run far from where it is (in a NAS network, the next cell's
preprocessing of a tensor the current cell has just read, which lets that tensor die a whole cell
earlier). :func:`move_search` makes those moves: for each tensor the incumbent spills (most bytes
first), it *hoists* each of its readers that runs after the spill to the step right after the last
layer it depends on, and *sinks* its producer to the step right before the first layer that needs it;
each new order is solved by the capacity-only ILP with the order fixed (resident semantics) or the
fixed-order allocation ILP (stream semantics), and kept when that gains.

Each move is ranked by the ILP's own result on the whole graph (the residency outside the window is
re-decided too), never by a greedy estimate, and a move is kept only when that result is strictly
better, so the search never returns anything worse than the incumbent. Windows are tried hottest
first: centred on the steps where the incumbent moves the most DRAM bytes (its loads and
write-backs), then sliding over the rest; after a kept move the heat is measured again. Windows that
the time left cannot solve are skipped; the search stops at the time limit, when no window is left, or
when the incumbent reaches ``floor`` (a proven lower bound).
"""

from __future__ import annotations

import logging
import time

from accel.errors import MappingError
from mapper.joint import JointProblem, JointResult, Semantics, relax_and_pack, solve_joint

__all__ = ["step_traffic", "window_search", "move_search", "hoist", "sink"]

_log = logging.getLogger(__name__)


def step_traffic(result: JointResult) -> list[int]:
    """DRAM bytes per step of ``result``'s order: each tensor's reads at their steps, writes at theirs."""
    heat = [0] * len(result.order)
    for ta in result.allocation.tensors.values():
        for s in ta.read_steps:
            heat[s] += ta.size_bytes
        for s in ta.write_steps:
            heat[s] += ta.size_bytes
    return heat


def _windows_by_heat(heat: list[int], width: int) -> list[tuple[int, int]]:
    """Windows of ``width`` steps, centred on hot steps first (most bytes), then the rest by heat."""
    n = len(heat)
    width = min(width, n)
    starts = range(0, max(1, n - width + 1))
    prefix = [0]
    for h in heat:
        prefix.append(prefix[-1] + h)
    centred = sorted({min(max(0, s - width // 2), n - width) for s in range(n) if heat[s]},
                     key=lambda a: (-(prefix[a + width] - prefix[a]), a))
    slide = sorted({a for a in starts if a % max(1, width // 2) == 0} - set(centred),
                   key=lambda a: (-(prefix[a + width] - prefix[a]), a))
    return [(a, a + width) for a in [*centred, *slide]]


def window_search(problem: JointProblem, incumbent: JointResult, *, time_limit_s: float, width: int = 16,
                  slots: int | None = 2, floor: float = 0.0, per_window_s: float | None = None) -> JointResult:
    """The best result found by reordering windows of ``width`` steps of ``incumbent`` (see the module
    docstring) in ``time_limit_s``; each window's ILP gets ``per_window_s`` (default: a tenth of the
    limit, at least 0.5 s). ``slots`` caps the offsets per tensor of the stream-semantics ILP."""
    if width < 2:
        raise MappingError(f"Window search: the window must span at least 2 steps, not {width}")
    began = time.perf_counter()
    share = per_window_s if per_window_s is not None else max(0.5, time_limit_s / 10)
    best = incumbent
    tried: set[tuple[tuple[str, ...], int]] = set()
    moves = kept = 0
    while best.non_compulsory_bytes > floor + 0.5:
        queue = [w for w in _windows_by_heat(step_traffic(best), width) if (best.order, w[0]) not in tried]
        if not queue:
            break
        improved = False
        for a, b in queue:
            left = time_limit_s - (time.perf_counter() - began)
            if left < min(share, 0.3):
                break
            tried.add((best.order, a))
            moves += 1
            limit = min(share, left)
            try:
                if problem.semantics is Semantics.RESIDENT:
                    found = relax_and_pack(problem, reference=best.order, free=(a, b), time_limit_s=limit, warm=best)
                else:
                    found = solve_joint(problem, reference=best.order, free=(a, b), slots=slots, time_limit_s=limit,
                                        warm=[best])
            except MappingError as e:  # the window's model did not solve in its share
                _log.info("%s: window [%d, %d): %s", problem.name, a, b, e)
                continue
            if found is not None and found.non_compulsory_bytes < best.non_compulsory_bytes:
                _log.info("%s: window [%d, %d) %d -> %d B", problem.name, a, b, best.non_compulsory_bytes,
                          found.non_compulsory_bytes)
                best, improved = found, True
                kept += 1
                break
        if not improved:
            break
    return JointResult(best.order, best.allocation, best.status, best.bound, time.perf_counter() - began,
                       {**best.details, "window_moves": moves, "window_kept": kept})


def hoist(problem: JointProblem, order: tuple[str, ...], layer: str) -> tuple[str, ...]:
    """``order`` with ``layer`` moved to right after the last layer it reads from (or the start)."""
    index = {name: i for i, name in enumerate(problem.layers)}
    me = index[layer]
    rest = [name for name in order if name != layer]
    preds = {problem.layers[p] for p in problem.preds[me]}
    at = max((k + 1 for k, name in enumerate(rest) if name in preds), default=0)
    return tuple(rest[:at] + [layer] + rest[at:])


def sink(problem: JointProblem, order: tuple[str, ...], layer: str) -> tuple[str, ...]:
    """``order`` with ``layer`` moved to right before the first layer that reads from it (or the end)."""
    index = {name: i for i, name in enumerate(problem.layers)}
    me = index[layer]
    rest = [name for name in order if name != layer]
    succs = {problem.layers[i] for i, ps in enumerate(problem.preds) if me in ps}
    at = min((k for k, name in enumerate(rest) if name in succs), default=len(rest))
    return tuple(rest[:at] + [layer] + rest[at:])


def _moves(problem: JointProblem, best: JointResult) -> list[tuple[str, ...]]:
    """Hoists and sinks around the incumbent's spilled tensors, most spilled bytes first."""
    step = {name: s for s, name in enumerate(best.order)}
    spilled = sorted(((ta.dram_read_bytes + ta.dram_write_bytes, ta.name, ta) for ta in best.allocation.tensors.values()
                      if ta.read_steps), key=lambda x: (-x[0], x[1]))
    tensors = {t.name: t for t in problem.tensors}
    out: list[tuple[str, ...]] = []
    for _, name, ta in spilled:
        t = tensors[name]
        first_read = min(ta.read_steps)
        for c in sorted(set(t.consumers), key=lambda c: -step[problem.layers[c]]):
            if step[problem.layers[c]] >= first_read:
                out.append(hoist(problem, best.order, problem.layers[c]))
        if t.producer is not None:
            out.append(sink(problem, best.order, problem.layers[t.producer]))
    return [o for o in dict.fromkeys(out) if o != best.order]


def move_search(problem: JointProblem, incumbent: JointResult, *, time_limit_s: float, floor: float = 0.0,
                per_move_s: float | None = None) -> JointResult:
    """The best result found by hoisting and sinking layers around the incumbent's spills (see the
    module docstring) in ``time_limit_s``; each move's ILP gets ``per_move_s`` (default: a tenth of the
    limit, at least 0.3 s)."""
    from mapper.joint import _fixed

    began = time.perf_counter()
    share = per_move_s if per_move_s is not None else max(0.3, time_limit_s / 10)
    best = incumbent
    seen: set[tuple[str, ...]] = {incumbent.order}
    moves = kept = 0
    improved = True
    while improved and best.non_compulsory_bytes > floor + 0.5:
        improved = False
        for order in _moves(problem, best):
            left = time_limit_s - (time.perf_counter() - began)
            if left < min(share, 0.3):
                break
            if order in seen:
                continue
            seen.add(order)
            moves += 1
            try:
                if problem.semantics is Semantics.RESIDENT:
                    found = relax_and_pack(problem, order=order, time_limit_s=min(share, left))
                else:
                    found = _fixed(problem, problem.indices(order), min(share, left), 2)
            except MappingError as e:
                _log.info("%s: move: %s", problem.name, e)
                continue
            if found is not None and found.non_compulsory_bytes < best.non_compulsory_bytes:
                _log.info("%s: move %d -> %d B", problem.name, best.non_compulsory_bytes, found.non_compulsory_bytes)
                best, improved = found, True
                kept += 1
                break
    return JointResult(best.order, best.allocation, best.status, best.bound, time.perf_counter() - began,
                       {**best.details, "moves_tried": moves, "moves_kept": kept})
