"""The ILP memory allocator (HiGHS): residency per gap, byte offsets, eviction and reload.

Decision variables, on the gap model of :mod:`mapper.lifetimes` (only *allowed* gaps get any):

* ``y_g`` (binary): gap ``g`` of tensor ``t`` stays on chip for its whole interval ``[a_g, b_g]``;
* ``o_g`` (continuous, ``0 <= o_g <= L_g - s_t``, ``L_g`` the fewest bytes available in the gap):
  its byte offset; two consecutive gaps both on chip share one offset (the tensor does not move);
* ``z_te`` at an event ``e`` shared by two gaps of ``t``: on chip at ``e`` (``z >= y`` of both);
* ``w_t`` (``0..1``): activation ``t`` is written to DRAM (``w_t >= 1 - y_g`` for each of its gaps);
* ``p_gh``, ``q_gh`` (binary) for gaps of different tensors whose intervals intersect: ``g`` below
  ``h`` (``o_g + s_g <= o_h + M(1 - p)``) or above it; ``p + q >= y_g + y_h - 1``.

Objective: ``sum_g s_g (1 - y_g) + sum_t s_t w_t`` plus the same for disallowed gaps (constants),
which is exactly the non-compulsory DRAM traffic. Capacity rows ``sum s r <= capacity - reserved``
at every step are implied by the offsets but tighten the relaxation. Pairs that cannot both fit get
``y_g + y_h <= 1`` and no order variables; an order that cannot fit is dropped.

Solving: first the *capacity-only* relaxation (no offsets: a multi-knapsack over steps) gives a valid
lower bound; its residency is packed into offsets by first fit; if that packing loses nothing, it is
optimal. Otherwise the full model runs with the best known allocation (the packed relaxation or a
baseline) as a warm start (HiGHS ``setSolution``), so the answer is never worse than any of them.
Models with more than ``window_gaps`` allowed gaps are solved in windows of the schedule: each window
decides the gaps that start in it (with a look-ahead of the next window's gaps, decided again later),
with every earlier decision fixed; the bound is then the relaxation's. Solver offsets are finally
compacted to integers in their solved order (first fit, lowest offset), which keeps any feasible
solution feasible.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mapper.allocate import Allocation, allocation_from_gaps, kept_gaps, pack_runs
from mapper.lifetimes import MemoryProblem

if TYPE_CHECKING:
    import highspy

__all__ = ["solve_ilp", "quiet_highs", "pass_model", "returned_warm_start", "weighted_non_compulsory", "WINDOW_GAPS"]

_log = logging.getLogger(__name__)

#: Above this many allowed gaps the ILP is solved in windows of about this many gaps each.
WINDOW_GAPS = 300


_QUIET = threading.Lock()


def quiet_highs() -> highspy.Highs:
    """A HiGHS instance that prints nothing.

    HiGHS's C++ constructor writes its banner ("Running HiGHS ...") to the process's standard output
    before any option can be set, so ``output_flag`` alone does not silence it. The constructor runs
    with file descriptors 1 and 2 pointed at a temporary file, whose text goes to this module's log
    at debug level; then ``output_flag`` is switched off for everything the solver would print later.
    The instance runs on one thread (as every model of the mapper does). HiGHS is imported here, by
    the first model built, not with the mapper.
    """
    import highspy

    with _QUIET, tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            # one thread everywhere: HiGHS keeps the thread count of the first model it runs in a
            # process and fails ("scheduler already initialised") any later model asking for another
            h.setOptionValue("threads", 1)
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        sink.seek(0)
        text = sink.read().decode(errors="replace").strip()
    if text:
        _log.debug("HiGHS: %s", text)
    return h


def pass_model(h: highspy.Highs, cost: Sequence[float], lower: Sequence[float], upper: Sequence[float],
               integer: Sequence[bool], row_lower: Sequence[float], row_upper: Sequence[float],
               starts: Sequence[int], index: Sequence[int], value: Sequence[float], offset: float) -> None:
    """Give ``h`` the minimisation with these columns and row-wise (CSR) rows (infinite bounds as floats)."""
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(row_lower)
    inf = highspy.kHighsInf
    lp.col_cost_ = np.array(cost, dtype=float)
    lp.col_lower_ = np.array(lower, dtype=float)
    lp.col_upper_ = np.array(upper, dtype=float)
    lp.row_lower_ = np.array([-inf if v == -math.inf else v for v in row_lower], dtype=float)
    lp.row_upper_ = np.array([inf if v == math.inf else v for v in row_upper], dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integer]
    lp.offset_ = offset
    h.passModel(lp)


def returned_warm_start(h: highspy.Highs, cost: Sequence[float], offset: float) -> bool:
    """Whether a solved ``h`` handed back values worse than the optimum it reports. HiGHS (seen in 1.16)
    may report the optimum it found while returning the warm start given to ``setSolution`` as the
    solution; the caller then solves again without the start."""
    info = h.getInfo()
    if info.primal_solution_status != 2:
        return False
    reported = info.objective_function_value
    achieved = offset + float(np.dot(cost, list(h.getSolution().col_value)))
    if achieved <= reported + 1e-6 * max(1.0, abs(reported)):
        return False
    _log.debug("HiGHS returned its warm start (objective %g) with optimum %g: solving again without it",
               achieved, reported)
    return True


@dataclass
class _Model:
    """A MIP under construction: columns and rows (COO), minimised."""

    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    rows: list[list[tuple[int, float]]] = field(default_factory=list)
    offset: float = 0.0

    def col(self, cost: float, lower: float, upper: float, integer: bool) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, terms: Iterable[tuple[int, float]], lower: float = -math.inf, upper: float = math.inf) -> None:
        self.rows.append(list(terms))
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def solve(self, time_limit_s: float, mip_gap: float, start: Sequence[float] | None) -> _Solved:
        h = quiet_highs()
        h.setOptionValue("time_limit", max(0.05, float(time_limit_s)))
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        h.setOptionValue("random_seed", 0)
        h.setOptionValue("threads", 1)
        starts, index, value = [0], [], []
        for terms in self.rows:
            for c, v in terms:
                index.append(c)
                value.append(v)
            starts.append(len(index))
        pass_model(h, self.cost, self.lower, self.upper, self.integer, self.row_lower, self.row_upper,
                   starts, index, value, self.offset)
        if start is not None:
            import highspy

            sol = highspy.HighsSolution()
            sol.col_value = list(start)
            sol.value_valid = True
            h.setSolution(sol)
        began = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - began
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus()).lower().replace(" ", "_")
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        values = list(h.getSolution().col_value) if has_solution else None
        reported = info.objective_function_value if has_solution else None
        if start is not None and returned_warm_start(h, self.cost, self.offset):
            again = self.solve(max(0.05, time_limit_s - elapsed), mip_gap, None)
            return _Solved(again.status, again.values, again.objective, again.bound, elapsed + again.time_s)
        return _Solved(status, values, reported, info.mip_dual_bound, elapsed)


@dataclass(frozen=True)
class _Solved:
    status: str
    values: list[float] | None
    objective: float | None
    bound: float
    time_s: float


@dataclass
class _Vars:
    y: dict[int, int] = field(default_factory=dict)
    o: dict[int, int] = field(default_factory=dict)
    z: dict[tuple[int, int], int] = field(default_factory=dict)  # (tensor, step) -> column
    w: dict[int, int] = field(default_factory=dict)
    pairs: dict[tuple[int, int], tuple[int | None, int | None]] = field(default_factory=dict)


def _build(problem: MemoryProblem, decide: Sequence[int], fixed: Mapping[int, int], sunk: set[int],
           *, offsets: bool, scale: float) -> tuple[_Model, _Vars]:
    """The MIP over gaps ``decide`` (variables) and ``fixed`` (kept gaps at given offsets).

    ``sunk``: tensors whose DRAM write is already paid (or compulsory). Byte quantities are divided
    by ``scale``. Without ``offsets``, the capacity-only relaxation.
    """
    gaps = problem.gaps
    m = _Model()
    v = _Vars()
    members = sorted(set(decide) | set(fixed))
    for gid in members:
        g = gaps[gid]
        s = g.size_bytes / scale
        is_fixed = gid in fixed
        v.y[gid] = m.col(0.0 if is_fixed else -s, 1.0 if is_fixed else 0.0, 1.0, True)
        if not is_fixed:
            m.offset += s
        if offsets:
            top = (g.limit_bytes - g.size_bytes) / scale
            value = fixed[gid] / scale if is_fixed else None
            v.o[gid] = m.col(0.0, value if is_fixed else 0.0, value if is_fixed else top, False)
    # writes of activations not yet paid for
    for gid in decide:
        t = gaps[gid].tensor
        if t in sunk or not problem.tensors[t].is_activation or problem.tensors[t].graph_output:
            continue
        if t not in v.w:
            v.w[t] = m.col(problem.tensors[t].size_bytes / scale, 0.0, 1.0, False)
        m.row([(v.w[t], 1.0), (v.y[gid], 1.0)], lower=1.0)
    # residency at each step (z at events shared by two member gaps of one tensor)
    by_step: dict[int, list[tuple[int, float]]] = {}
    member_set = set(members)
    for gid in members:
        g = gaps[gid]
        s = g.size_bytes / scale
        for step in range(g.start, g.end + 1):
            if step == g.start and g.index > 0 and problem.tensor_gaps[g.tensor][g.index - 1] in member_set:
                continue  # counted through z with the previous gap
            if step == g.end and g.index + 1 < len(problem.tensor_gaps[g.tensor]) and \
                    problem.tensor_gaps[g.tensor][g.index + 1] in member_set:
                nxt = problem.tensor_gaps[g.tensor][g.index + 1]
                z = m.col(0.0, 0.0, 1.0, False)
                v.z[(g.tensor, step)] = z
                m.row([(z, 1.0), (v.y[gid], -1.0)], lower=0.0)
                m.row([(z, 1.0), (v.y[nxt], -1.0)], lower=0.0)
                by_step.setdefault(step, []).append((z, s))
                continue
            by_step.setdefault(step, []).append((v.y[gid], s))
    _reread_costs(problem, m, v, members, fixed, scale)
    for step, terms in sorted(by_step.items()):
        available = problem.available_bytes(step) / scale
        if sum(s for _, s in terms) > available + 1e-12:
            m.row(terms, upper=available)
    # continuity: consecutive gaps both on chip share one offset
    if offsets:
        for gid in members:
            g = gaps[gid]
            if g.index == 0:
                continue
            prev = problem.tensor_gaps[g.tensor][g.index - 1]
            if prev not in member_set or (prev in fixed and gid in fixed):
                continue
            big = max(gaps[prev].limit_bytes, g.limit_bytes) / scale
            for sign in (1.0, -1.0):
                m.row([(v.o[gid], sign), (v.o[prev], -sign), (v.y[gid], big), (v.y[prev], big)], upper=2 * big)
    # pairs of gaps of different tensors that intersect in time
    order = sorted(members, key=lambda i: (gaps[i].start, i))
    active: list[int] = []
    for gid in order:
        g = gaps[gid]
        active = [a for a in active if gaps[a].end >= g.start]
        for other in active:
            h = gaps[other]
            if h.tensor == g.tensor or (gid in fixed and other in fixed):
                continue
            _pair(m, v, gaps, other, gid, scale, offsets)
        active.append(gid)
    return m, v


def _reread_costs(problem: MemoryProblem, m: _Model, v: _Vars, members: Sequence[int], fixed: Mapping[int, int],
                  scale: float) -> None:
    """Price each use at the plan's reads: a use whose tensor is not on chip at its step is streamed by
    the layer's tiles, ``reread`` times its size; on chip from that step (a reload) it is read once.
    The extra ``(reread - 1) x size`` is saved where the tensor is on chip at the use: ``z`` (at an
    event two member gaps share, then ``z <= y_g + y_next``) or the one member gap's ``y``."""
    gaps = problem.gaps
    member_set = set(members)
    for gid in members:
        if gid in fixed:
            continue
        g = gaps[gid]
        t = problem.tensors[g.tensor]
        if not t.reread:
            continue
        ids = problem.tensor_gaps[g.tensor]
        s = g.size_bytes / scale
        nxt = ids[g.index + 1] if g.index + 1 < len(ids) else None
        extra = s * (t.reread_at(g.end) - 1.0)
        if extra > 0:
            z = v.z.get((g.tensor, g.end))
            if z is not None and nxt in member_set:
                m.cost[z] -= extra
                m.row([(z, 1.0), (v.y[gid], -1.0), (v.y[nxt], -1.0)], upper=0.0)
            else:
                m.cost[v.y[gid]] -= extra
        prev = ids[g.index - 1] if g.index > 0 else None
        first_use = g.index == 0 and t.producer_step is None
        if (first_use or (prev is not None and prev not in member_set)) and t.reread_at(g.start) > 1.0:
            m.cost[v.y[gid]] -= s * (t.reread_at(g.start) - 1.0)


def _pair(m: _Model, v: _Vars, gaps: Sequence, a: int, b: int, scale: float, offsets: bool) -> None:
    ga, gb = gaps[a], gaps[b]
    both = ga.size_bytes + gb.size_bytes
    a_below = both <= gb.limit_bytes  # a at the bottom, b on top: b's top bounds both
    b_below = both <= ga.limit_bytes
    if not (a_below or b_below):
        m.row([(v.y[a], 1.0), (v.y[b], 1.0)], upper=1.0)
        v.pairs[(a, b)] = (None, None)
        return
    if not offsets:
        return
    p = m.col(0.0, 0.0, 1.0, True) if a_below else None
    q = m.col(0.0, 0.0, 1.0, True) if b_below else None
    sa, sb = ga.size_bytes / scale, gb.size_bytes / scale
    if p is not None:  # o_a + s_a <= o_b + M(1 - p), M = L_a
        big = ga.limit_bytes / scale
        m.row([(v.o[a], 1.0), (v.o[b], -1.0), (p, big)], upper=big - sa)
    if q is not None:
        big = gb.limit_bytes / scale
        m.row([(v.o[b], 1.0), (v.o[a], -1.0), (q, big)], upper=big - sb)
    terms = [(c, 1.0) for c in (p, q) if c is not None]
    m.row([*terms, (v.y[a], -1.0), (v.y[b], -1.0)], lower=-1.0)
    if p is not None and q is not None:
        m.row([(p, 1.0), (q, 1.0)], upper=1.0)
    v.pairs[(a, b)] = (p, q)


def _start_values(m: _Model, v: _Vars, problem: MemoryProblem, kept: Mapping[int, int], scale: float) -> list[float]:
    """A full column vector for the allocation that keeps ``kept`` (gap -> offset)."""
    x = [lo for lo in m.lower]
    for gid, col in v.y.items():
        x[col] = 1.0 if gid in kept else m.lower[col]
        if gid in v.o:
            x[v.o[gid]] = kept[gid] / scale if gid in kept else m.lower[v.o[gid]]
    for (t, step), col in v.z.items():
        x[col] = 1.0 if any(gid in kept for gid in problem.tensor_gaps[t]
                            if problem.gaps[gid].start <= step <= problem.gaps[gid].end) else 0.0
    for t, col in v.w.items():
        x[col] = 0.0 if all(gid in kept for gid in problem.tensor_gaps[t] if gid in v.y) else 1.0
    for (a, b), (p, q) in v.pairs.items():
        if a in kept and b in kept:
            if p is not None and kept[a] < kept[b]:
                x[p] = 1.0
            elif q is not None:
                x[q] = 1.0
    return x


def _anchor(m: _Model, v: _Vars, problem: MemoryProblem, scale: float) -> None:
    """Shift the objective so that it equals the non-compulsory DRAM bytes (scaled)."""
    at_zero = m.offset + sum(m.cost[col] for col in v.w.values())  # nothing kept: every write paid
    m.offset += _objective(problem, {}) / scale - at_zero


def _runs(problem: MemoryProblem, kept: Iterable[int]) -> list[tuple[int, ...]]:
    """Maximal chains of consecutive kept gaps of one tensor."""
    kept_set = set(kept)
    runs: list[tuple[int, ...]] = []
    for ids in problem.tensor_gaps:
        current: list[int] = []
        for gid in ids:
            if gid in kept_set:
                current.append(gid)
            elif current:
                runs.append(tuple(current))
                current = []
        if current:
            runs.append(tuple(current))
    return runs


def _compact(problem: MemoryProblem, kept: Mapping[int, float]) -> dict[int, int]:
    """Integer offsets: runs placed lowest-first in the order of their solved offsets."""
    runs = _runs(problem, kept)
    rank = {run: (kept[run[0]], problem.gaps[run[0]].start) for run in runs}
    packed = pack_runs(problem, runs, order=rank)
    lost = len(kept) - len(packed)
    if lost:
        _log.warning("%s: %d on-chip gaps lost when rounding solver offsets", problem.name, lost)
    return packed


def _objective(problem: MemoryProblem, kept: Mapping[int, int]) -> int:
    return weighted_non_compulsory(problem, allocation_from_gaps(problem, kept, ""))


def weighted_non_compulsory(problem: MemoryProblem, allocation: Allocation) -> int:
    """Non-compulsory DRAM bytes with each use priced at the plan's reads (:attr:`MemoryTensor.reread`):
    a read at a step where the tensor is not on chip is streamed, ``reread`` times its size; a reload
    into its place is read once. Without re-read factors: :attr:`Allocation.non_compulsory_bytes`."""
    if not any(t.reread for t in problem.tensors):
        return allocation.non_compulsory_bytes
    total = 0.0
    for t in problem.tensors:
        ta = allocation.tensors[t.name]
        total += ta.dram_write_bytes
        for r in ta.read_steps:
            total += t.size_bytes * (1.0 if ta.offset_at(r) is not None else t.reread_at(r))
    return round(total) - problem.compulsory_dram_bytes


def _best_packing(problem: MemoryProblem, kept: Iterable[int]) -> dict[int, int]:
    runs = _runs(problem, kept)
    options = [pack_runs(problem, runs, order=o) for o in ("start", "size", "length")]
    return min(options, key=lambda k: _objective(problem, k))


def _values_to_kept(v: _Vars, values: Sequence[float], gids: Iterable[int], scale: float) -> dict[int, float]:
    return {gid: (values[v.o[gid]] * scale if gid in v.o else 0.0) for gid in gids if values[v.y[gid]] > 0.5}


def solve_ilp(problem: MemoryProblem, *, time_limit_s: float = 10.0, mip_gap: float = 0.01,
              warm: Sequence[Allocation] = (), window_gaps: int = WINDOW_GAPS, shortcut: bool = True) -> Allocation:
    """The ILP allocation of ``problem`` (see the module docstring); never worse than ``warm``.

    ``shortcut=False`` skips the packed relaxation as an answer and a warm start (its bound is still
    used), so the full (or windowed) model always runs: for testing that model.
    """
    began = time.perf_counter()
    gaps = problem.gaps
    allowed = [g.id for g in gaps if g.allowed]
    sunk = {g.tensor for g in gaps if not g.allowed}
    scale = max(1.0, problem.capacity_bytes / 1024.0)

    def finish(kept: Mapping[int, int], status: str, bound: float, windows: int = 1, **details: object) -> Allocation:
        objective = _objective(problem, kept)
        bound = min(float(objective), max(0.0, bound))
        gap = 0.0 if objective <= 0 else (objective - bound) / objective
        if gap <= 1e-9:
            status = "optimal"
        elif gap <= mip_gap:
            status = "gap_reached"
        return allocation_from_gaps(problem, kept, "ilp", status=status, objective=float(objective), bound=bound,
                                    gap=gap, solve_time_s=time.perf_counter() - began, windows=windows,
                                    details=details)

    if not allowed:  # nothing can stay on chip: keeping nothing is the only allocation, so it is optimal
        return finish({}, "optimal", float(_objective(problem, {})), reason="no tensor can stay on chip")

    # the best known allocation
    incumbents = [kept_gaps(problem, a) for a in warm]
    # 1. the capacity-only relaxation: a lower bound, and often the answer once packed
    rm, rv = _build(problem, allowed, {}, sunk, offsets=False, scale=scale)
    _anchor(rm, rv, problem, scale)
    relax = rm.solve(time_limit_s * 0.3, mip_gap / 2, None)
    bound = relax.bound * scale if relax.bound is not None and math.isfinite(relax.bound) else 0.0
    if relax.values is not None and shortcut:
        incumbents.append(_best_packing(problem, [g for g in allowed if relax.values[rv.y[g]] > 0.5]))
    best = min(incumbents, key=lambda k: _objective(problem, k)) if incumbents else {}
    best_objective = _objective(problem, best)
    _log.info("%s: relaxation bound %.0f B, best packed/baseline %d B (%.2fs)", problem.name, bound,
              best_objective, time.perf_counter() - began)
    if shortcut and best_objective <= bound * (1 + 1e-9) + 0.5:
        return finish(best, "optimal", bound, method_detail="packed relaxation")
    if shortcut and best_objective <= bound + mip_gap * best_objective:
        return finish(best, "gap_reached", bound, method_detail="packed relaxation")

    remaining = time_limit_s - (time.perf_counter() - began)
    if len(allowed) <= window_gaps:
        m, v = _build(problem, allowed, {}, sunk, offsets=True, scale=scale)
        _anchor(m, v, problem, scale)
        solved = m.solve(remaining, mip_gap, _start_values(m, v, problem, best, scale))
        status = solved.status
        if math.isfinite(solved.bound):
            bound = max(bound, solved.bound * scale)
        if solved.values is not None:
            kept = _compact(problem, _values_to_kept(v, solved.values, allowed, scale))
            if _objective(problem, kept) < best_objective:
                best, best_objective = kept, _objective(problem, kept)
        return finish(best, status, bound, columns=len(m.cost), rows=len(m.rows))

    # 2'. windowed: decide the gaps starting in each window, with a look-ahead, earlier decisions fixed
    by_start = sorted(allowed, key=lambda i: (gaps[i].start, i))
    windows = max(2, math.ceil(len(by_start) / window_gaps))
    size = math.ceil(len(by_start) / windows)
    fixed: dict[int, int] = {}
    decided_out: set[int] = set()
    statuses = []
    for w in range(windows):
        decide = by_start[w * size:(w + 1) * size]
        ahead = by_start[(w + 1) * size:(w + 1) * size + size // 2]
        first_step = gaps[decide[0]].start
        live_fixed = {gid: off for gid, off in fixed.items() if gaps[gid].end >= first_step}
        window_sunk = sunk | {gaps[gid].tensor for gid in decided_out}
        m, v = _build(problem, [*decide, *ahead], live_fixed, window_sunk, offsets=True, scale=scale)
        start = {gid: off for gid, off in best.items() if gid in v.y and gid not in fixed}
        start.update(live_fixed)
        left = time_limit_s - (time.perf_counter() - began)
        solved = m.solve(max(0.2, left / (windows - w)), mip_gap,
                         _start_values(m, v, problem, start, scale))
        statuses.append(solved.status)
        for gid in decide:
            if solved.values is not None and solved.values[v.y[gid]] > 0.5:
                fixed[gid] = round(solved.values[v.o[gid]] * scale)
            else:
                decided_out.add(gid)
    kept = _compact(problem, {gid: float(off) for gid, off in fixed.items()})
    if _objective(problem, kept) < best_objective:
        best, best_objective = kept, _objective(problem, kept)
    return finish(best, "windowed", bound, windows=windows, window_statuses=statuses)
