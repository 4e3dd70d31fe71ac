"""Joint operator order and scratchpad allocation: one ILP decides the schedule, the residency and the offsets.

The fixed-order allocator (:mod:`mapper.ilp`) decides residency per gap between a tensor's events,
which needs the steps fixed. Here the order is a decision too (COSMA's and OLLA's time-indexed form):

* ``x[l, s]`` (binary): layer ``l`` runs at step ``s``; every layer at one step, one layer per step,
  a layer after the layers it reads from (``sum_s s x[c, s] >= sum_s s x[p, s] + 1``);
* ``r[t, k, s]`` (binary): tensor ``t`` sits on chip at step ``s`` in its *slot* ``k`` (one byte offset
  ``o[t, k]`` per slot; a tensor that leaves the chip may come back at another offset, in another slot);
  at most one slot at a time, and an activation only once produced;
* ``ld[t, s]`` (0..1): a load, ``>= r[t, k, s] - r[t, k, s - 1]`` for every slot, less ``x[producer, s]``
  (produced in place is no load); ``sr[t, c]`` (0..1): consumer ``c`` streams ``t`` from DRAM,
  ``>= x[c, s] - sum_k r[t, k, s]``; ``w[t]`` (0..1): activation ``t`` is written to DRAM, ``>=`` each
  of its loads and streamed reads;
* offsets: ``o[t, k] + size_t <= o[u, k'] + C (1 - p)`` or the other way round (``q``), with
  ``p + q >= r[t, k, s] + r[u, k', s] - 1`` at every step both could be on chip; a resident's top stays
  below the running layer's working space (``capacity - reserved``).

Objective: ``sum size_t (ld + sr) + sum size_t w - compulsory``: the non-compulsory DRAM traffic of the
same model as :mod:`mapper.lifetimes` (a streamed operand costs its size once per consuming layer).
With as many slots as a tensor has gaps this equals the gap model's optimum for every order, so for a
fixed order it is :func:`mapper.ilp.solve_ilp`'s problem and for a free one the joint optimum.

**Semantics** (:class:`Semantics`): ``stream`` (default, the mapper's model): a layer streams an operand
that is not resident through its tile buffers, so tensors larger than the scratchpad are fine;
``resident`` (COSMA's): every input and output of the running layer is on chip at its step (loaded
whole before it, written back whole after), there is no working space, and so the budget must hold
the largest layer's operands (``M_R``).

**Size.** Each layer may only take the steps between its ancestor count and the layer count less its
descendants, and, given a ``band`` around a reference order, at most ``band`` steps from its position
there. Small graphs (or ``band=None``) are solved over every topological order. Big ones go through
:func:`optimise`: the best of a few candidate orders (:mod:`mapper.order`) by this ILP with the order
fixed, then the banded ILP around the incumbent, repeated while it improves and time is left (a local
search whose moves are every reordering within the band, ranked by the ILP itself, never by a
heuristic). Every solve starts from the incumbent (HiGHS ``setSolution``), so it is never worse.

:func:`min_peak` is the minimum over schedules of the peak of live bytes (no spills; COSMA's ``M_P``).
:func:`check_joint` proves a solution valid from the problem alone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import highspy

from accel.errors import MappingError
from accel.hardware import Accelerator
from mapper.allocate import Allocation, TensorAllocation, allocation_from_gaps, pack_runs, place_in_order
from mapper.ilp import pass_model, quiet_highs, returned_warm_start
from mapper.lifetimes import MemoryProblem, problem_from_graph
from workloads.graph import Graph, TensorKind

__all__ = [
    "Semantics", "JointTensor", "JointProblem", "JointResult", "joint_problem", "solve_joint", "optimise",
    "min_peak", "check_joint", "evaluate", "to_memory_problem", "topological_orders", "EXACT_LAYERS",
    "schedule", "spill_all", "fold_into_producers", "peak_bytes", "relax_and_pack", "lower_bound",
    "FULL_MODEL_LAYERS", "forced_live_bound", "live_cut_bound",
]

_log = logging.getLogger(__name__)

#: Graphs with at most this many layers are solved over every order (no band).
EXACT_LAYERS = 12


class Semantics(Enum):
    STREAM = "stream"
    RESIDENT = "resident"


@dataclass(frozen=True)
class JointTensor:
    """A buffer: its size, the layer (index) producing it and the layers reading it."""

    name: str
    size_bytes: int
    kind: TensorKind
    producer: int | None
    consumers: tuple[int, ...]
    graph_output: bool = False

    @property
    def is_activation(self) -> bool:
        return self.kind is TensorKind.ACTIVATION

    @property
    def compulsory_bytes(self) -> int:
        if self.is_activation:
            return self.size_bytes if self.graph_output else 0
        return self.size_bytes if self.consumers else 0

    def events(self, step_of: Sequence[int]) -> tuple[int, ...]:
        uses = tuple(sorted({step_of[c] for c in self.consumers}))
        return uses if self.producer is None else (step_of[self.producer], *uses)


@dataclass(frozen=True)
class JointProblem:
    """Layers (in the graph's order), their dependencies and working space, the tensors, the budget."""

    name: str
    layers: tuple[str, ...]
    preds: tuple[tuple[int, ...], ...]
    reserved_bytes: tuple[int, ...]
    tensors: tuple[JointTensor, ...]
    capacity_bytes: int
    semantics: Semantics = Semantics.STREAM

    def __post_init__(self) -> None:
        n = len(self.layers)
        if len(self.preds) != n or len(self.reserved_bytes) != n:
            raise MappingError(f"Joint problem {self.name!r}: preds and reserved_bytes need one entry per layer ({n})")
        if self.capacity_bytes <= 0:
            raise MappingError(f"Joint problem {self.name!r}: capacity must be positive, not {self.capacity_bytes}")
        for i, ps in enumerate(self.preds):
            if any(not 0 <= p < n or p == i for p in ps):
                raise MappingError(f"Layer {self.layers[i]!r}: predecessors {ps} must be other layers' indices")
        if self.semantics is Semantics.RESIDENT:
            for i in range(n):
                need = sum(t.size_bytes for t in self.tensors if t.producer == i or i in t.consumers)
                if need + self.reserved_bytes[i] > self.capacity_bytes:
                    raise MappingError(f"Layer {self.layers[i]!r}: its operands need {need} B on chip together "
                                       f"(resident semantics), more than the {self.capacity_bytes} B budget")

    @property
    def compulsory_dram_bytes(self) -> int:
        return sum(t.compulsory_bytes for t in self.tensors)

    def is_order(self, order: Sequence[int]) -> bool:
        if sorted(order) != list(range(len(self.layers))):
            return False
        position = {layer: s for s, layer in enumerate(order)}
        return all(position[p] < position[i] for i in range(len(self.layers)) for p in self.preds[i])

    def names(self, order: Sequence[int]) -> tuple[str, ...]:
        return tuple(self.layers[i] for i in order)

    def indices(self, order: Sequence[str]) -> tuple[int, ...]:
        index = {name: i for i, name in enumerate(self.layers)}
        try:
            out = tuple(index[name] for name in order)
        except KeyError as e:
            raise MappingError(f"Joint problem {self.name!r} has no layer {e.args[0]!r}") from None
        if not self.is_order(out):
            raise MappingError(f"{list(order)} is not a topological order of {self.name!r}'s layers")
        return out


@dataclass(frozen=True)
class JointResult:
    """An order (layer names) and an allocation over its steps, with the solver's account."""

    order: tuple[str, ...]
    allocation: Allocation
    status: str
    bound: float
    time_s: float
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def non_compulsory_bytes(self) -> int:
        return self.allocation.non_compulsory_bytes

    @property
    def gap(self) -> float:
        nc = self.non_compulsory_bytes
        return 0.0 if nc <= 0 else max(0.0, (nc - self.bound) / nc)


# -- building the problem -----------------------------------------------------------------------

def joint_problem(graph: Graph, arch: Accelerator, *, capacity_bytes: int | None = None,
                  reserved: int | Mapping[str, int] | None = None, semantics: Semantics = Semantics.STREAM,
                  weights: bool = True) -> JointProblem:
    """The joint problem of ``graph`` on ``arch``: tensors and sizes as :func:`problem_from_graph` makes
    them (views share their root's buffer), dependencies from the graph. ``weights=False`` leaves out
    constants (COSMA's "activations only"); under ``resident`` semantics ``reserved`` defaults to 0."""
    if semantics is Semantics.RESIDENT and reserved is None:
        reserved = 0
    base = problem_from_graph(graph, arch, capacity_bytes=capacity_bytes, reserved=reserved)
    index = {layer.name: i for i, layer in enumerate(graph.layers)}
    preds = []
    for layer in graph.layers:
        ps = {index[graph.tensors[t].producer] for t in layer.inputs if graph.tensors[t].producer is not None}
        preds.append(tuple(sorted(ps)))
    tensors = []
    for t in base.tensors:
        if not weights and t.kind is TensorKind.CONSTANT:
            continue
        if semantics is Semantics.STREAM and len(t.events) < 2:
            continue  # no gap in any order: its traffic is fixed
        tensors.append(JointTensor(t.name, t.size_bytes, t.kind, t.producer_step, t.use_steps, t.graph_output))
    return JointProblem(graph.name, tuple(layer.name for layer in graph.layers), tuple(preds), base.reserved_bytes,
                        tuple(tensors), base.capacity_bytes, semantics)


def to_memory_problem(problem: JointProblem, order: Sequence[int]) -> MemoryProblem:
    """The fixed-order gap model (:mod:`mapper.lifetimes`) of ``problem`` in ``order`` (stream semantics)."""
    from mapper.lifetimes import MemoryTensor

    step_of = _step_of(order)
    tensors = tuple(MemoryTensor(t.name, t.size_bytes, t.kind, None if t.producer is None else step_of[t.producer],
                                 tuple(sorted({step_of[c] for c in t.consumers})), t.graph_output)
                    for t in problem.tensors)
    return MemoryProblem(problem.name, problem.capacity_bytes, problem.names(order),
                         tuple(problem.reserved_bytes[i] for i in order), tensors)


def _step_of(order: Sequence[int]) -> list[int]:
    step_of = [0] * len(order)
    for s, layer in enumerate(order):
        step_of[layer] = s
    return step_of


def _relatives(problem: JointProblem) -> tuple[list[int], list[int]]:
    """Ancestor and descendant counts of every layer."""
    anc, desc = _relative_sets(problem)
    return [a.bit_count() for a in anc], [d.bit_count() for d in desc]


def _kahn(problem: JointProblem) -> list[int]:
    n = len(problem.layers)
    waiting = [len(set(ps)) for ps in problem.preds]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(problem.preds):
        for p in set(ps):
            succs[p].append(i)
    ready = [i for i in range(n) if waiting[i] == 0]
    out = []
    while ready:
        i = ready.pop(0)
        out.append(i)
        for c in succs[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    if len(out) != n:
        raise MappingError(f"Joint problem {problem.name!r}: the layers' dependencies have a cycle")
    return out


def topological_orders(problem: JointProblem, limit: int | None = None) -> Iterable[tuple[int, ...]]:
    """Every topological order (up to ``limit``), in lexicographic order of layer indices."""
    n = len(problem.layers)
    preds = [set(ps) for ps in problem.preds]
    count = 0

    def rec(done: list[int], placed: set[int]) -> Iterable[tuple[int, ...]]:
        nonlocal count
        if len(done) == n:
            count += 1
            yield tuple(done)
            return
        for i in range(n):
            if i not in placed and preds[i] <= placed:
                done.append(i)
                placed.add(i)
                yield from rec(done, placed)
                placed.discard(i)
                done.pop()
                if limit is not None and count >= limit:
                    return

    yield from rec([], set())


# -- evaluation of a fixed solution -------------------------------------------------------------

def evaluate(problem: JointProblem, order: Sequence[int],
             intervals: Mapping[str, Sequence[tuple[int, int, int]]]) -> Allocation:
    """The allocation with exactly the on-chip ``intervals`` (per tensor: ``(first, last, offset)``
    steps of ``order``): its loads, streamed reads and writes under ``problem``'s semantics."""
    step_of = _step_of(order)
    tensors = {}
    reads = writes = 0
    for t in problem.tensors:
        ivs = tuple(sorted(intervals.get(t.name, ())))
        uses = sorted({step_of[c] for c in t.consumers})
        produced = None if t.producer is None else step_of[t.producer]
        read_steps = [first for first, _, _ in ivs if first != produced]
        read_steps += [u for u in uses if not any(a <= u <= b for a, b, _ in ivs)]
        # a use on chip since an interval that started after the previous event is covered by that load
        read_steps = sorted(read_steps)
        write_steps: list[int] = []
        if t.is_activation and (t.graph_output or read_steps):
            first_iv = next((iv for iv in ivs if iv[0] == produced), None)
            write_steps.append(produced if first_iv is None else first_iv[1])  # type: ignore[arg-type]
        ta = TensorAllocation(t.name, t.size_bytes, ivs, tuple(read_steps), tuple(write_steps))
        tensors[t.name] = ta
        reads += ta.dram_read_bytes
        writes += ta.dram_write_bytes
    return Allocation("joint", tensors, reads, writes, problem.compulsory_dram_bytes)


def check_joint(problem: JointProblem, result: JointResult) -> None:
    """Prove ``result`` valid for ``problem`` (raise :class:`MappingError` on the first violation).

    The order is topological; every interval lies within its tensor's lifetime and starts at its
    producer step or with a read; under resident semantics every operand of the running layer is on
    chip; at every step the residents fit below ``capacity - reserved`` without overlapping; the
    traffic is what :func:`evaluate` counts for these intervals.
    """
    order = problem.indices(result.order)
    step_of = _step_of(order)
    n = len(order)
    at: list[list[tuple[int, int, str]]] = [[] for _ in range(n)]
    for t in problem.tensors:
        ta = result.allocation.tensors.get(t.name)
        if ta is None:
            raise MappingError(f"Tensor {t.name!r} has no allocation")
        ev = t.events(step_of)
        last = -1
        for first, end, offset in sorted(ta.intervals):
            lo = ev[0] if ev else 0
            hi = ev[-1] if ev else n - 1
            if t.producer is not None:
                lo = step_of[t.producer]
            if first < lo or end > hi or first > end or first <= last:
                raise MappingError(f"Tensor {t.name!r}: on-chip interval [{first}, {end}] outside its lifetime "
                                   f"[{lo}, {hi}] or overlapping another")
            if not isinstance(offset, int) or offset < 0:
                raise MappingError(f"Tensor {t.name!r}: offset must be a non-negative integer, not {offset!r}")
            last = end
            for s in range(first, end + 1):
                at[s].append((offset, offset + t.size_bytes, t.name))
        if problem.semantics is Semantics.RESIDENT:
            for s in ev:
                if ta.offset_at(s) is None:
                    raise MappingError(f"Tensor {t.name!r} is an operand of step {s} ({problem.layers[order[s]]!r}) "
                                       f"but not on chip there (resident semantics)")
    for s, items in enumerate(at):
        top = problem.capacity_bytes - problem.reserved_bytes[order[s]]
        items.sort()
        for k, (lo, hi, name) in enumerate(items):
            if hi > top:
                raise MappingError(f"Tensor {name!r} at [{lo}, {hi}) exceeds the {top} B available at step {s}")
            if k and lo < items[k - 1][1] and hi > lo:
                raise MappingError(f"Tensors {items[k - 1][2]!r} and {name!r} overlap at step {s}")
    again = evaluate(problem, order, {t: ta.intervals for t, ta in result.allocation.tensors.items()})
    if again.dram_bytes != result.allocation.dram_bytes:
        raise MappingError(f"Joint result claims {result.allocation.dram_bytes} B of DRAM traffic; its intervals "
                           f"move {again.dram_bytes} B")


# -- the MIP --------------------------------------------------------------------------------------

@dataclass
class _Cols:
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    rl: list[float] = field(default_factory=list)
    ru: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def col(self, cost: float, lower: float, upper: float, integer: bool) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, terms: Iterable[tuple[int, float]], lower: float = -math.inf, upper: float = math.inf) -> None:
        merged: dict[int, float] = {}
        for c, v in terms:
            merged[c] = merged.get(c, 0.0) + v
        for c, v in merged.items():
            if v:
                self.index.append(c)
                self.value.append(v)
        self.starts.append(len(self.index))
        self.rl.append(lower)
        self.ru.append(upper)

    def highs(self, offset: float) -> highspy.Highs:
        h = quiet_highs()
        pass_model(h, self.cost, self.lower, self.upper, self.integer, self.rl, self.ru, self.starts, self.index,
                   self.value, offset)
        return h


@dataclass
class _Model:
    cols: _Cols
    x: dict[tuple[int, int], int]
    r: dict[tuple[int, int, int], int]  # (tensor, slot, step)
    o: dict[tuple[int, int], int]
    ld: dict[tuple[int, int], int]
    sr: dict[tuple[int, int], int]  # (tensor, consumer layer)
    w: dict[int, int]
    pq: dict[tuple[tuple[int, int], tuple[int, int]], tuple[int, int]]
    windows: list[range]
    life: list[range]
    slots: list[int]
    scale: float
    offset: float


def _windows(problem: JointProblem, reference: Sequence[int] | None, band: int | None,
             free: tuple[int, int] | None = None) -> list[range]:
    """The steps each layer may take: between its ancestor count and the layer count less its
    descendants; with a ``reference`` order, within ``band`` steps of its position there, or, with
    ``free = (a, b)``, anywhere in steps ``a .. b - 1`` if its reference step is there and pinned to its
    reference step otherwise (the layers of a window of the reference order reordered among themselves)."""
    n = len(problem.layers)
    anc, desc = _relatives(problem)
    step_of = _step_of(reference) if reference is not None else None
    out = []
    for i in range(n):
        lo, hi = anc[i], n - 1 - desc[i]
        if free is not None and step_of is not None:
            a, b = free
            lo, hi = (max(lo, a), min(hi, b - 1)) if a <= step_of[i] < b else (step_of[i], step_of[i])
        elif band is not None and step_of is not None:
            lo, hi = max(lo, step_of[i] - band), min(hi, step_of[i] + band)
        out.append(range(lo, hi + 1))
    return out


def _build(problem: JointProblem, windows: list[range], *, slots: int | None, offsets: bool,
           at_least: Mapping[str, int] | None = None) -> _Model:
    n = len(problem.layers)
    scale = max(1.0, problem.capacity_bytes / 1024.0)
    cap = problem.capacity_bytes / scale
    c = _Cols()
    x: dict[tuple[int, int], int] = {}
    for i in range(n):
        for s in windows[i]:
            x[(i, s)] = c.col(0.0, 0.0, 1.0, True)
    for i in range(n):
        c.row([(x[(i, s)], 1.0) for s in windows[i]], 1.0, 1.0)
    at_step: list[list[int]] = [[] for _ in range(n)]
    for (i, s) in x:
        at_step[s].append(i)
    for s in range(n):
        if not at_step[s]:
            raise MappingError(f"Joint problem {problem.name!r}: no layer can run at step {s} in this band")
        c.row([(x[(i, s)], 1.0) for i in at_step[s]], 1.0, 1.0)
    for i in range(n):
        for p in set(problem.preds[i]):
            terms = [(x[(i, s)], float(s)) for s in windows[i]] + [(x[(p, s)], -float(s)) for s in windows[p]]
            c.row(terms, lower=1.0)

    resident = problem.semantics is Semantics.RESIDENT
    life: list[range] = []
    nslots: list[int] = []
    r: dict[tuple[int, int, int], int] = {}
    o: dict[tuple[int, int], int] = {}
    ld: dict[tuple[int, int], int] = {}
    sr: dict[tuple[int, int], int] = {}
    w: dict[int, int] = {}
    offset = -problem.compulsory_dram_bytes / scale
    for ti, t in enumerate(problem.tensors):
        size = t.size_bytes / scale
        if t.producer is not None:
            lo = windows[t.producer].start
        else:
            lo = min((windows[u].start for u in t.consumers), default=0)
        hi = max((windows[u].stop - 1 for u in t.consumers), default=lo if t.producer is None else
                 windows[t.producer].stop - 1)
        span = range(lo, hi + 1)
        life.append(span)
        events = len(set(t.consumers)) + (t.producer is not None)
        k_max = events if resident else max(1, events - 1)
        if slots is not None:
            k_max = min(k_max, max(slots, (at_least or {}).get(t.name, 0)))
        nslots.append(k_max)
        if size * scale > problem.capacity_bytes:
            k_max = nslots[-1] = 0
        for k in range(k_max):
            for s in span:
                r[(ti, k, s)] = c.col(0.0, 0.0, 1.0, True)
            if offsets:
                o[(ti, k)] = c.col(0.0, 0.0, max(0.0, cap - size), False)
        if t.is_activation and not t.graph_output:
            w[ti] = c.col(size, 0.0, 1.0, False)
        elif t.is_activation:
            offset += size  # compulsory write, paid whatever happens
        for s in span:
            if k_max > 1:
                c.row([(r[(ti, k, s)], 1.0) for k in range(k_max)], upper=1.0)
            made = [(x[(t.producer, q)], 1.0) for q in windows[t.producer] if q <= s] if t.producer is not None else []
            if t.producer is not None and k_max:
                # not on chip before it is produced
                c.row([*[(r[(ti, k, s)], 1.0) for k in range(k_max)], *[(col, -1.0) for col, _ in made]], upper=0.0)
            if k_max:
                col = ld[(ti, s)] = c.col(size, 0.0, 1.0, False)
                here = [(x[(t.producer, s)], 1.0)] if t.producer is not None and (t.producer, s) in x else []
                for k in range(k_max):
                    terms = [(col, 1.0), (r[(ti, k, s)], -1.0), *here]
                    if s - 1 in span:
                        terms.append((r[(ti, k, s - 1)], 1.0))
                    c.row(terms, lower=0.0)
                if ti in w:
                    c.row([(w[ti], 1.0), (col, -1.0)], lower=0.0)
        for u in sorted(set(t.consumers)):
            if resident:
                if not k_max:
                    raise MappingError(f"Tensor {t.name!r} ({t.size_bytes} B) cannot be on chip")
                for s in windows[u]:
                    c.row([*[(r[(ti, k, s)], 1.0) for k in range(k_max)], (x[(u, s)], -1.0)], lower=0.0)
                continue
            col = sr[(ti, u)] = c.col(size, 0.0, 1.0, False)
            for s in windows[u]:
                c.row([(col, 1.0), (x[(u, s)], -1.0), *[(r[(ti, k, s)], 1.0) for k in range(k_max)]], lower=0.0)
            if ti in w:
                c.row([(w[ti], 1.0), (col, -1.0)], lower=0.0)
        if resident and t.producer is not None:
            for s in windows[t.producer]:
                c.row([*[(r[(ti, k, s)], 1.0) for k in range(k_max)], (x[(t.producer, s)], -1.0)], lower=0.0)
    # capacity at every step: residents plus the running layer's working space
    by_step: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for (ti, _k, s), col in r.items():
        by_step[s].append((col, problem.tensors[ti].size_bytes / scale))
    for s in range(n):
        reserve = [(x[(i, s)], problem.reserved_bytes[i] / scale) for i in at_step[s] if problem.reserved_bytes[i]]
        if by_step[s]:
            c.row([*by_step[s], *reserve], upper=cap)
    pq: dict[tuple[tuple[int, int], tuple[int, int]], tuple[int, int]] = {}
    if offsets:
        # residents stay below the running layer's working space
        for (ti, k, s), col in r.items():
            reserve = [(x[(i, s)], problem.reserved_bytes[i] / scale) for i in at_step[s] if problem.reserved_bytes[i]]
            if not reserve:
                continue
            big = max(v for _, v in reserve)
            size = problem.tensors[ti].size_bytes / scale
            c.row([(o[(ti, k)], 1.0), *reserve, (col, big)], upper=cap - size + big)
        keys = sorted(o, key=lambda key: (life[key[0]].start, key))
        active: list[tuple[int, int]] = []
        pairs = []
        for key in keys:  # sweep over lifetimes: only slots whose windows meet get order variables
            active = [a for a in active if life[a[0]].stop > life[key[0]].start]
            pairs += [(a, key) if a < key else (key, a) for a in active if a[0] != key[0]]
            active.append(key)
        for (ta, ka), (tb, kb) in sorted(pairs):
            common = range(max(life[ta].start, life[tb].start), min(life[ta].stop, life[tb].stop))
            sa, sb = problem.tensors[ta].size_bytes / scale, problem.tensors[tb].size_bytes / scale
            if (sa + sb) > cap + 1e-12:
                for s in common:
                    c.row([(r[(ta, ka, s)], 1.0), (r[(tb, kb, s)], 1.0)], upper=1.0)
                continue
            p = c.col(0.0, 0.0, 1.0, True)
            q = c.col(0.0, 0.0, 1.0, True)
            c.row([(o[(ta, ka)], 1.0), (o[(tb, kb)], -1.0), (p, cap)], upper=cap - sa)
            c.row([(o[(tb, kb)], 1.0), (o[(ta, ka)], -1.0), (q, cap)], upper=cap - sb)
            c.row([(p, 1.0), (q, 1.0)], upper=1.0)
            for s in common:
                c.row([(p, 1.0), (q, 1.0), (r[(ta, ka, s)], -1.0), (r[(tb, kb, s)], -1.0)], lower=-1.0)
            pq[((ta, ka), (tb, kb))] = (p, q)
    return _Model(c, x, r, o, ld, sr, w, pq, windows, life, nslots, scale, offset)


def _start(m: _Model, problem: JointProblem, order: Sequence[int],
           intervals: Mapping[str, Sequence[tuple[int, int, int]]]) -> list[float] | None:
    """A full column vector for a known solution, or None if it does not fit the model's windows/slots."""
    v = [0.0] * len(m.cols.cost)
    step_of = _step_of(order)
    for i, s in enumerate(step_of):
        if (i, s) not in m.x:
            return None
        v[m.x[(i, s)]] = 1.0
    for ti, t in enumerate(problem.tensors):
        ivs = sorted(intervals.get(t.name, ()))
        if m.o and len(ivs) > m.slots[ti]:
            return None
        if ivs and not m.slots[ti]:
            return None
        on: set[int] = set()
        for k, (first, last, off) in enumerate(ivs):
            if first not in m.life[ti] or last not in m.life[ti]:
                return None
            for s in range(first, last + 1):
                v[m.r[(ti, min(k, m.slots[ti] - 1), s)]] = 1.0
                on.add(s)
            if (ti, k) in m.o:
                v[m.o[(ti, k)]] = off / m.scale
        produced = None if t.producer is None else step_of[t.producer]
        any_read = False
        for s in m.life[ti]:
            if (ti, s) in m.ld and s in on and s - 1 not in on and s != produced:
                v[m.ld[(ti, s)]] = 1.0
                any_read = True
            elif (ti, s) in m.ld and s in on and s != produced:
                # a switch of slot between s - 1 and s is a load too
                k_now = next(k for k, iv in enumerate(ivs) if iv[0] <= s <= iv[1])
                k_before = next(k for k, iv in enumerate(ivs) if iv[0] <= s - 1 <= iv[1])
                if k_now != k_before:
                    v[m.ld[(ti, s)]] = 1.0
                    any_read = True
        for u in set(t.consumers):
            if (ti, u) in m.sr and step_of[u] not in on:
                v[m.sr[(ti, u)]] = 1.0
                any_read = True
        if ti in m.w and any_read:
            v[m.w[ti]] = 1.0
    for (a, b), (p, q) in m.pq.items():
        oa, ob = v[m.o[a]], v[m.o[b]]
        sa, sb = problem.tensors[a[0]].size_bytes / m.scale, problem.tensors[b[0]].size_bytes / m.scale
        if oa + sa <= ob + 1e-9:
            v[p] = 1.0
        elif ob + sb <= oa + 1e-9:
            v[q] = 1.0
    return v


def _decode(m: _Model, problem: JointProblem, values: Sequence[float]) -> tuple[tuple[int, ...],
                                                                           dict[str, list[tuple[int, int, int]]]]:
    n = len(problem.layers)
    order = [0] * n
    for (i, s), col in m.x.items():
        if values[col] > 0.5:
            order[s] = i
    intervals: dict[str, list[tuple[int, int, int]]] = {}
    for ti, t in enumerate(problem.tensors):
        ivs: list[tuple[int, int, int]] = []
        for k in range(m.slots[ti]):
            steps = [s for s in m.life[ti] if values[m.r[(ti, k, s)]] > 0.5]
            off = round(values[m.o[(ti, k)]] * m.scale) if (ti, k) in m.o else 0
            run: list[int] = []
            for s in steps:
                if run and s != run[-1] + 1:
                    ivs.append((run[0], run[-1], off))
                    run = []
                run.append(s)
            if run:
                ivs.append((run[0], run[-1], off))
        intervals[t.name] = sorted(ivs)
    return tuple(order), intervals


def _trim(problem: JointProblem, order: Sequence[int],
          intervals: Mapping[str, Sequence[tuple[int, int, int]]]) -> dict[str, list[tuple[int, int, int]]]:
    """Drop on-chip steps that buy nothing (after a tensor's last event, before it is needed)."""
    step_of = _step_of(order)
    out = {}
    for t in problem.tensors:
        ev = t.events(step_of)
        last = ev[-1] if ev else -1
        start = ev[0] if ev else 0
        kept = []
        for first, end, off in intervals.get(t.name, ()):
            first, end = max(first, start), min(end, last)
            if first <= end:
                kept.append((first, end, off))
        out[t.name] = kept
    return out


def _compact(problem: JointProblem, order: Sequence[int],
             intervals: Mapping[str, Sequence[tuple[int, int, int]]]) -> dict[str, list[tuple[int, int, int]]]:
    """Integer offsets: intervals placed lowest-first in the order of their solved offsets (keeps feasibility)."""
    n = len(order)
    tops = [problem.capacity_bytes - problem.reserved_bytes[order[s]] for s in range(n)]
    size = {t.name: t.size_bytes for t in problem.tensors}
    blocks = sorted(((off, first, name, first, end) for name, ivs in intervals.items()
                     for first, end, off in ivs), key=lambda b: (b[0], b[1], b[2]))
    placed: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    out: dict[str, list[tuple[int, int, int]]] = {name: [] for name in intervals}
    for _, _, name, first, end in blocks:
        sz = size[name]
        taken = sorted({b for s in range(first, end + 1) for b in placed[s]})
        cursor = 0
        for lo, hi in taken:
            if lo >= cursor + sz:
                break
            cursor = max(cursor, hi)
        top = min(tops[first:end + 1])
        if cursor + sz > top:
            raise MappingError(f"{problem.name}: tensor {name!r} does not fit after rounding offsets")
        for s in range(first, end + 1):
            placed[s].append((cursor, cursor + sz))
        out[name].append((first, end, cursor))
    return {k: sorted(v) for k, v in out.items()}


def _result(problem: JointProblem, order: Sequence[int], intervals: Mapping[str, Sequence[tuple[int, int, int]]],
            status: str, bound: float, began: float, **details: object) -> JointResult:
    allocation = evaluate(problem, order, intervals)
    nc = allocation.non_compulsory_bytes
    bound = min(float(nc), max(0.0, bound))
    gap = 0.0 if nc <= 0 else (nc - bound) / nc
    if gap <= 1e-9:
        status = "optimal"
    allocation = dataclasses.replace(allocation, status=status, objective=float(nc), bound=bound, gap=gap,
                                     solve_time_s=time.perf_counter() - began)
    return JointResult(problem.names(order), allocation, status, bound, time.perf_counter() - began, details)


def solve_joint(problem: JointProblem, *, order: Sequence[str] | None = None, reference: Sequence[str] | None = None,
                band: int | None = None, slots: int | None = None, time_limit_s: float = 10.0, mip_gap: float = 0.0,
                warm: Sequence[JointResult] = (), free: tuple[int, int] | None = None) -> JointResult:
    """The joint ILP of ``problem``: over every order (default), the fixed ``order``, within ``band``
    steps of ``reference``, or with the steps ``free = (a, b)`` of ``reference`` reordered and the rest
    pinned; ``slots`` caps the offsets per tensor (default: as many as it has gaps, which is exact).
    Starts from the best ``warm`` result that fits; never returns anything worse."""
    began = time.perf_counter()
    if order is not None:
        ref = problem.indices(order)
        windows = [range(s, s + 1) for s in _step_of(ref)]
    else:
        ref = problem.indices(reference) if reference is not None else None
        windows = _windows(problem, ref, band if ref is not None else None, free if ref is not None else None)
    at_least: dict[str, int] = {}
    for candidate in warm:
        for name, ta in candidate.allocation.tensors.items():
            at_least[name] = max(at_least.get(name, 0), len(ta.intervals))
    m = _build(problem, windows, slots=slots, offsets=True, at_least=at_least)
    def fresh() -> highspy.Highs:
        h = m.cols.highs(m.offset)
        h.setOptionValue("time_limit", max(0.05, float(time_limit_s) - (time.perf_counter() - began)))
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        h.setOptionValue("mip_abs_gap", 0.5 / m.scale)
        h.setOptionValue("random_seed", 0)
        h.setOptionValue("threads", 1)
        return h

    h = fresh()
    started = False
    best: JointResult | None = None
    for candidate in sorted(warm, key=lambda r: r.non_compulsory_bytes):
        start = _start(m, problem, problem.indices(candidate.order),
                       {name: ta.intervals for name, ta in candidate.allocation.tensors.items()})
        if best is None or candidate.non_compulsory_bytes < best.non_compulsory_bytes:
            best = candidate
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = start
            sol.value_valid = True
            h.setSolution(sol)
            started = True
            break
    h.run()
    info = h.getInfo()
    if started and returned_warm_start(h, m.cols.cost, m.offset):
        h = fresh()
        h.run()
        info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus()).lower().replace(" ", "_")
    bound = info.mip_dual_bound * m.scale if math.isfinite(info.mip_dual_bound) else 0.0
    if order is None and (band is not None or free is not None) and reference is not None:
        bound = 0.0  # a band's (window's) bound holds for the band only
    if info.primal_solution_status == 2:
        values = list(h.getSolution().col_value)
        found_order, intervals = _decode(m, problem, values)
        intervals = _compact(problem, found_order, _trim(problem, found_order, intervals))
        found = _result(problem, found_order, intervals, status, bound, began, columns=len(m.cols.cost),
                        rows=len(m.cols.rl))
        if best is None or found.non_compulsory_bytes <= best.non_compulsory_bytes:
            return found
    if best is None:
        raise MappingError(f"Joint problem {problem.name!r}: the ILP found no solution in {time_limit_s} s ({status})")
    return _result(problem, problem.indices(best.order),
                   {name: ta.intervals for name, ta in best.allocation.tensors.items()}, "warm_start", bound, began)


# -- stream semantics: to and from the gap model ------------------------------------------------

def to_allocation(problem: JointProblem, result: JointResult) -> tuple[MemoryProblem, Allocation]:
    """A stream-semantics result as the gap model's problem and allocation in its order: a gap is kept
    where the tensor stays in one place from one event to the next (what the result pays nothing for)."""
    order = problem.indices(result.order)
    mp = to_memory_problem(problem, order)
    kept: dict[int, int] = {}
    for ti, t in enumerate(mp.tensors):
        ta = result.allocation.tensors[t.name]
        for gid in mp.tensor_gaps[ti]:
            g = mp.gaps[gid]
            for first, last, off in ta.intervals:
                if first <= g.start and g.end <= last:
                    kept[gid] = off
    runs = []
    for ids in mp.tensor_gaps:
        cur: list[int] = []
        for gid in ids:
            if gid in kept and (not cur or kept[cur[-1]] == kept[gid]):
                cur.append(gid)
            else:
                if cur:
                    runs.append(tuple(cur))
                cur = [gid] if gid in kept else []
        if cur:
            runs.append(tuple(cur))
    packed = pack_runs(mp, runs, order={run: (kept[run[0]], mp.gaps[run[0]].start) for run in runs})
    return mp, allocation_from_gaps(mp, packed, "joint")


def _fixed(problem: JointProblem, order: Sequence[int], time_limit_s: float, slots: int | None,
           warm: Sequence[JointResult] = ()) -> JointResult:
    """The best allocation for a fixed order, by an ILP: the gap-model ILP (:func:`mapper.ilp.solve_ilp`,
    the same optimum, faster) under stream semantics; under resident semantics the joint ILP with the
    order fixed, warm-started from the TFLite arena with Belady replacement on that order."""
    began = time.perf_counter()
    if problem.semantics is Semantics.STREAM:
        from mapper.allocate import allocate_firstfit, allocate_greedy
        from mapper.ilp import solve_ilp

        mp = to_memory_problem(problem, order)
        a = solve_ilp(mp, time_limit_s=time_limit_s, mip_gap=0.0, warm=(allocate_greedy(mp), allocate_firstfit(mp)))
        return _result(problem, order, {name: ta.intervals for name, ta in a.tensors.items()}, a.status,
                       a.bound or 0.0, began, fixed_order=True)
    from mapper.arena import tflite_arena

    seeds = [r for r in (tflite_arena(problem, problem.names(order), "belady"),) if r is not None]
    return solve_joint(problem, order=problem.names(order), time_limit_s=time_limit_s, slots=slots,
                       warm=[*warm, *seeds, spill_all(problem, order)])


def spill_all(problem: JointProblem, order: Sequence[int]) -> JointResult:
    """Resident semantics' plan that always fits (the budget holds every layer's operands): each tensor on
    chip only at the steps that use or produce it, stacked from offset 0."""
    began = time.perf_counter()
    step_of = _step_of(order)
    height = [0] * len(order)
    intervals: dict[str, list[tuple[int, int, int]]] = {}
    for t in problem.tensors:
        ivs = []
        for s in t.events(step_of):
            ivs.append((s, s, height[s]))
            height[s] += t.size_bytes
        intervals[t.name] = ivs
    return _result(problem, order, intervals, "heuristic", 0.0, began, method="spill-all")


def fold_into_producers(problem: JointProblem, layers: Iterable[str]) -> JointProblem:
    """``problem`` with each of ``layers`` merged into the layer producing its one input (which nothing
    else reads): the producer then writes the merged layer's outputs, as a framework fuses a ReLU or
    folds a batch norm into the convolution before it. Layers that do not qualify stay."""
    index = {name: i for i, name in enumerate(problem.layers)}
    tensors = list(problem.tensors)
    merged: dict[int, int] = {}  # layer -> the layer it is merged into

    def root(i: int) -> int:
        while i in merged:
            i = merged[i]
        return i

    for name in layers:
        i = index[name]
        ins = [k for k, t in enumerate(tensors) if i in t.consumers]
        if len(ins) != 1:
            continue
        t = tensors[ins[0]]
        if t.producer is None or set(t.consumers) != {i} or t.graph_output:
            continue
        producer = root(t.producer)
        merged[i] = producer
        tensors[ins[0]] = dataclasses.replace(t, consumers=())  # gone: never leaves the fused layer
        tensors = [dataclasses.replace(u, producer=producer) if u.producer == i else u for u in tensors]
    keep = [i for i in range(len(problem.layers)) if i not in merged]
    new = {old: k for k, old in enumerate(keep)}

    def renum(i: int) -> int:
        return new[root(i)]

    out = []
    for t in tensors:
        if t.producer is not None and not t.consumers and not t.graph_output:
            continue
        out.append(dataclasses.replace(t, producer=None if t.producer is None else renum(t.producer),
                                       consumers=tuple(sorted({renum(c) for c in t.consumers}))))
    preds = []
    for i in keep:
        ps = set()
        for j in range(len(problem.layers)):
            if root(j) == i:
                ps |= {renum(p) for p in problem.preds[j]}
        ps.discard(new[i])
        preds.append(tuple(sorted(ps)))
    reserved = tuple(max(problem.reserved_bytes[j] for j in range(len(problem.layers)) if root(j) == i) for i in keep)
    return JointProblem(problem.name, tuple(problem.layers[i] for i in keep), tuple(preds), reserved, tuple(out),
                        problem.capacity_bytes, problem.semantics)


def relax_and_pack(problem: JointProblem, *, order: Sequence[str] | None = None,
                   reference: Sequence[str] | None = None, band: int | None = None,
                   free: tuple[int, int] | None = None, time_limit_s: float = 10.0,
                   warm: JointResult | None = None) -> JointResult | None:
    """The capacity-only joint ILP (order and residency, no offsets: a multi-knapsack over steps) over
    the fixed ``order`` or the ``band`` around ``reference``, its residency then placed by greedy-by-size
    or first fit in start order (the lower top wins); ``free`` as in :func:`solve_joint`. Where the
    placement needs more than the budget, the
    ILP runs again with that excess kept free at those steps (at most six times); None if nothing fits.
    The relaxation's bound is a lower bound for the fixed order (or, with neither, every order). A
    ``warm`` result that fits the windows starts the first relaxation (its residency is feasible there)."""
    from mapper.arena import greedy_by_size

    began = time.perf_counter()
    if order is not None:
        windows = [range(s, s + 1) for s in _step_of(problem.indices(order))]
    else:
        ref = problem.indices(reference) if reference is not None else None
        windows = _windows(problem, ref, band if ref is not None else None, free if ref is not None else None)
    bound = None
    reserve = list(problem.reserved_bytes)
    own = [sum(t.size_bytes for t in problem.tensors if t.producer == i or i in t.consumers)
           if problem.semantics is Semantics.RESIDENT else 0 for i in range(len(problem.layers))]
    attempts = 6
    build_s = 0.0
    guided: JointResult | None = None  # the online arena following each relaxation (always fits)

    def fallback() -> JointResult | None:
        if guided is None:
            return None
        return dataclasses.replace(guided, status="relaxation_guided")
    for attempt in range(attempts):
        left = time_limit_s - (time.perf_counter() - began)
        if left <= 0.05 + 2 * build_s:
            return fallback()
        sub = dataclasses.replace(problem, reserved_bytes=tuple(reserve))
        t0 = time.perf_counter()
        m = _build(sub, windows, slots=1, offsets=False)
        build_s = time.perf_counter() - t0
        left -= build_s
        h = m.cols.highs(m.offset)
        if warm is not None and attempt == 0:
            start = _start(m, problem, problem.indices(warm.order),
                           {name: ta.intervals for name, ta in warm.allocation.tensors.items()})
            if start is not None:
                sol = highspy.HighsSolution()
                sol.col_value = start
                sol.value_valid = True
                h.setSolution(sol)
        h.setOptionValue("time_limit", max(0.05, left / (attempts - attempt)))
        h.setOptionValue("mip_rel_gap", 1e-4)
        h.setOptionValue("random_seed", 0)
        h.setOptionValue("threads", 1)
        h.run()
        info = h.getInfo()
        if bound is None:
            bound = info.mip_dual_bound * m.scale if math.isfinite(info.mip_dual_bound) else 0.0
        if info.primal_solution_status != 2:
            return fallback()
        found_order, intervals = _decode(m, sub, list(h.getSolution().col_value))
        intervals = _trim(problem, found_order, intervals)
        if problem.semantics is Semantics.RESIDENT:
            from mapper.arena import online_arena

            guide = {name: {st for a, b, _ in ivs for st in range(a, b + 1)} for name, ivs in intervals.items()}
            for policy in ("belady", "min-bytes"):
                follow = online_arena(problem, problem.names(found_order), policy, guide=guide)
                if guided is None or follow.non_compulsory_bytes < guided.non_compulsory_bytes:
                    guided = follow
        size = {t.name: t.size_bytes for t in problem.tensors}
        blocks = [(size[name], a, b, name) for name, ivs in intervals.items() for a, b, _ in ivs]
        best_top, best_offsets = None, None
        for offsets in (greedy_by_size([(sz, a, b) for sz, a, b, _ in blocks]), _first_fit(blocks)):
            top = max((o + blk[0] for o, blk in zip(offsets, blocks, strict=True)), default=0)
            if best_top is None or top < best_top:
                best_top, best_offsets = top, offsets
        assert best_top is not None and best_offsets is not None
        tops_ok = all(o + blk[0] <= problem.capacity_bytes - problem.reserved_bytes[found_order[s]]
                      for o, blk in zip(best_offsets, blocks, strict=True) for s in range(blk[1], blk[2] + 1))
        if tops_ok:
            placed: dict[str, list[tuple[int, int, int]]] = {t.name: [] for t in problem.tensors}
            for o, (_, a, b, name) in zip(best_offsets, blocks, strict=True):
                placed[name].append((a, b, o))
            packed = _result(problem, found_order, placed, "relaxation_packed",
                             bound if ((band is None and free is None) or reference is None) else 0.0, began,
                             attempts=attempt + 1)
            other = fallback()
            return packed if other is None or packed.non_compulsory_bytes <= other.non_compulsory_bytes else other
        # where the placement overflows, the next relaxation keeps the excess free (a per-step cut)
        height = [0] * len(found_order)
        for o, (sz, a, b, _) in zip(best_offsets, blocks, strict=True):
            for step in range(a, b + 1):
                height[step] = max(height[step], o + sz)
        changed = False
        for step, top in enumerate(height):
            layer = found_order[step]
            excess = top - (problem.capacity_bytes - reserve[layer])
            room = problem.capacity_bytes - own[layer] - reserve[layer]
            if excess > 0 and room > 0:
                reserve[layer] += min(excess, room)
                changed = True
        if not changed:
            return fallback()
    return fallback()


def _first_fit(blocks: Sequence[tuple[int, int, int, str]]) -> list[int]:
    """Lowest free offset for each ``(size, first, last, name)`` block, in order of first step."""
    return place_in_order(blocks, sorted(range(len(blocks)), key=lambda i: (blocks[i][1], -blocks[i][0], i)))


def _relative_sets(problem: JointProblem) -> tuple[list[int], list[int]]:
    """Ancestor and descendant bitsets of every layer."""
    n = len(problem.layers)
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(problem.preds):
        for p in ps:
            succs[p].append(i)
    order = _kahn(problem)
    anc = [0] * n
    for i in order:
        for p in problem.preds[i]:
            anc[i] |= anc[p] | (1 << p)
    desc = [0] * n
    for i in reversed(order):
        for c in succs[i]:
            desc[i] |= desc[c] | (1 << c)
    return anc, desc


def forced_live_bound(problem: JointProblem, *, time_limit_s: float = 5.0) -> float:
    """A lower bound for every order and allocation under resident semantics, from what must be live.

    While layer ``l`` runs, its operands fill ``need(l)`` bytes, and every tensor made by an ancestor of
    ``l`` (for a graph input: read by one) and read by a descendant is live in *every* order. What of
    these does not fit beside the operands is off chip at ``l``'s step, so it was spilled: an activation
    pays a write and a read (a graph output only the read, its write is compulsory), an input a second
    read. Choosing the cheapest set to spill so that every layer's rest fits is a covering ILP over the
    tensors (one row per layer), solved by HiGHS; its dual bound is returned (0 if nothing is forced;
    under stream semantics, 0: a streamed operand needs no room)."""
    if problem.semantics is not Semantics.RESIDENT:
        return 0.0
    anc, desc = _relative_sets(problem)
    n = len(problem.layers)
    mask_of = []
    for t in problem.tensors:
        made = 0
        if t.producer is not None:
            made = 1 << t.producer
        else:
            for cons in t.consumers:
                made |= 1 << cons
        read = 0
        for cons in t.consumers:
            read |= 1 << cons
        mask_of.append((made, read))
    rows: list[tuple[list[int], float]] = []
    for i in range(n):
        own = {ti for ti, t in enumerate(problem.tensors) if t.producer == i or i in t.consumers}
        room = problem.capacity_bytes - problem.reserved_bytes[i] - sum(problem.tensors[ti].size_bytes for ti in own)
        live = [ti for ti, (made, read) in enumerate(mask_of)
                if ti not in own and made & anc[i] and read & desc[i]]
        total = sum(problem.tensors[ti].size_bytes for ti in live)
        if total > room:
            rows.append((live, total - room))  # at least this many bytes of ``live`` are off chip
    if not rows:
        return 0.0
    used = sorted({ti for live, _ in rows for ti in live})
    scale = max(1.0, problem.capacity_bytes / 1024.0)
    c = _Cols()
    y = {}
    for ti in used:
        t = problem.tensors[ti]
        cost = t.size_bytes * (2 if t.is_activation and not t.graph_output else 1)
        y[ti] = c.col(cost / scale, 0.0, 1.0, True)
    for live, excess in rows:
        c.row([(y[ti], problem.tensors[ti].size_bytes / scale) for ti in live], lower=excess / scale)
    h = c.highs(0.0)
    h.setOptionValue("time_limit", max(0.05, float(time_limit_s)))
    h.setOptionValue("mip_rel_gap", 1e-6)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    h.run()
    bound = h.getInfo().mip_dual_bound
    return max(0.0, bound * scale) if math.isfinite(bound) else 0.0


def live_cut_bound(problem: JointProblem, *, time_limit_s: float = 5.0) -> float:
    """A lower bound for every order and allocation under resident semantics, from the least that can
    be live while each layer runs.

    Before layer ``l`` runs, the layers already run form a set closed under predecessors that holds
    ``l``'s ancestors and none of its descendants; the tensors live beside ``l``'s operands are those
    made in that set and read outside it. The least such bytes over all these sets, ``live(l)``, is a
    minimum cut, solved as its LP (integral: difference constraints). At least ``live(l) + need(l) -
    capacity`` of those bytes are off chip at ``l``'s step, each spilled at a cost of at least its size
    (twice for an activation that is no graph output: written and read back). Layers whose candidate
    tensors are disjoint add up (chosen greedily, largest first). Graph inputs are left out (a lower
    bound still); 0 under stream semantics or when no layer is short of room."""
    if problem.semantics is not Semantics.RESIDENT:
        return 0.0
    began = time.perf_counter()
    anc, desc = _relative_sets(problem)
    n = len(problem.layers)
    made = [t.producer for t in problem.tensors]
    found: list[tuple[float, set[int]]] = []
    for i in range(n):
        if time.perf_counter() - began > time_limit_s:
            break
        own = {ti for ti, t in enumerate(problem.tensors) if t.producer == i or i in t.consumers}
        room = problem.capacity_bytes - problem.reserved_bytes[i] - sum(problem.tensors[ti].size_bytes for ti in own)
        later = desc[i] | (1 << i)
        cands = [ti for ti, t in enumerate(problem.tensors)
                 if ti not in own and made[ti] is not None and not (later >> made[ti]) & 1
                 and any(not (anc[i] >> cons) & 1 for cons in t.consumers)]
        if sum(problem.tensors[ti].size_bytes for ti in cands) <= room:
            continue
        c = _Cols()
        before: dict[int, int] = {}  # free layer -> column (1: runs before l)
        free = [j for j in range(n) if j != i and not (anc[i] >> j) & 1 and not (later >> j) & 1]
        for j in free:
            before[j] = c.col(0.0, 0.0, 1.0, False)

        def ran(j: int, before: dict[int, int] = before, ancestors: int = anc[i]) -> tuple[int | None, float]:
            """(column, constant): whether layer ``j`` ran before ``l``."""
            if j in before:
                return before[j], 0.0
            return None, 1.0 if (ancestors >> j) & 1 else 0.0

        for j in free:
            for pj in problem.preds[j]:
                col, const = ran(pj)
                if col is not None:
                    c.row([(before[j], 1.0), (col, -1.0)], upper=0.0)
                elif const == 0.0:
                    c.row([(before[j], 1.0)], upper=0.0)
        scale = max(1.0, problem.capacity_bytes / 1024.0)
        for ti in cands:
            t = problem.tensors[ti]
            live = c.col(t.size_bytes / scale, 0.0, 1.0, False)
            pcol, pconst = ran(made[ti])  # type: ignore[arg-type]
            for cons in set(t.consumers):
                ccol, cconst = ran(cons)
                terms = [(live, 1.0)]
                rhs = 0.0
                if pcol is not None:
                    terms.append((pcol, -1.0))
                else:
                    rhs += pconst
                if ccol is not None:
                    terms.append((ccol, 1.0))
                else:
                    rhs -= cconst
                c.row(terms, lower=rhs)  # live >= ran(producer) - ran(consumer)
        h = c.highs(0.0)
        h.run()
        if h.getInfo().primal_solution_status != 2:
            continue
        least = math.floor(h.getInfo().objective_function_value * scale + 1e-3)  # integral LP, float noise
        excess = least - room
        if excess > 0.5:
            mult = min(2 if problem.tensors[ti].is_activation and not problem.tensors[ti].graph_output else 1
                       for ti in cands)
            found.append((float(mult * excess), set(cands)))
    total = 0.0
    taken: set[int] = set()
    for value, cands in sorted(found, key=lambda f: -f[0]):
        if not cands & taken:
            total += value
            taken |= cands
    return max(0.0, total)


def lower_bound(problem: JointProblem, *, time_limit_s: float = 10.0) -> float:
    """A lower bound on the non-compulsory traffic of every order and allocation: the largest of
    :func:`forced_live_bound`, :func:`live_cut_bound` and the dual bound of the capacity-only joint ILP
    (no offsets) over every order (0 if none proves anything in time)."""
    began = time.perf_counter()
    forced = max(forced_live_bound(problem, time_limit_s=min(5.0, time_limit_s / 4)),
                 live_cut_bound(problem, time_limit_s=min(5.0, time_limit_s / 4)))
    m = _build(problem, _windows(problem, None, None), slots=1, offsets=False)
    h = m.cols.highs(m.offset)
    h.setOptionValue("time_limit", max(0.05, float(time_limit_s) - (time.perf_counter() - began)))
    h.setOptionValue("mip_rel_gap", 1e-4)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    h.run()
    bound = h.getInfo().mip_dual_bound
    return max(forced, bound * m.scale if math.isfinite(bound) else 0.0)


#: Above this many layers, :func:`optimise` ranks orders by the packed capacity-only ILP first.
FULL_MODEL_LAYERS = 80
#: The full ILP refines a big graph's best order only while it has at most this many residency columns.
FULL_MODEL_SLOT_STEPS = 20_000


def _estimated_slots(problem: JointProblem, order: Sequence[str], slots: int | None) -> int:
    """Residency columns of the full ILP with ``order`` fixed."""
    step_of = _step_of(problem.indices(order))
    total = 0
    for t in problem.tensors:
        ev = t.events(step_of)
        if ev:
            k = len(ev) if slots is None else min(len(ev), slots)
            total += k * (ev[-1] - ev[0] + 1)
    return total


def _search_orders(problem: JointProblem, best: JointResult, left: Callable[[], float], time_limit_s: float,
                   window: int, slots: int | None, floor: float) -> JointResult:
    """The local search of :mod:`mapper.order_search` from ``best`` while ``left()`` seconds remain:
    hoists and sinks around the spills, then windows, again while either gains."""
    from mapper.order_search import move_search, window_search

    while left() > 0.1 * time_limit_s and best.non_compulsory_bytes > floor + 0.5:
        before = best.non_compulsory_bytes
        best = move_search(problem, best, time_limit_s=left() * 0.6, floor=floor,
                           per_move_s=max(0.3, 0.05 * time_limit_s))
        if left() > 0.1 * time_limit_s and best.non_compulsory_bytes > floor + 0.5:
            best = window_search(problem, best, time_limit_s=left(), width=window, slots=slots, floor=floor,
                                 per_window_s=max(0.5, 0.08 * time_limit_s))
        if best.non_compulsory_bytes >= before:
            break
    return best


def optimise(problem: JointProblem, *, candidates: Sequence[Sequence[str]] = (), time_limit_s: float = 10.0,
             band: int = 3, slots: int | None = None, warm: Sequence[JointResult] = (),
             window: int = 16) -> JointResult:
    """The best order and allocation found in ``time_limit_s`` (see the module docstring).

    Small problems (at most :data:`EXACT_LAYERS` layers) get the exact joint ILP. Otherwise each of
    ``candidates`` (orders, e.g. from :mod:`mapper.order`) is solved with its order fixed, and the best
    is improved by the ILP over every order within ``band`` steps of it, as long as that gains and time
    is left, then by the window search (:func:`mapper.order_search.window_search`: windows of ``window``
    steps reordered freely, hottest first). Graphs of more than :data:`FULL_MODEL_LAYERS` layers under
    resident semantics are ranked and searched with the packed capacity-only ILP (:func:`relax_and_pack`)
    first, then the full ILP with the order fixed refines the best while time is left. ``warm`` results
    (baselines) are warm starts and a floor. The search stops as soon as a result meets
    :func:`forced_live_bound` or :func:`live_cut_bound` (it is then optimal).
    """
    began = time.perf_counter()

    def left() -> float:
        return time_limit_s - (time.perf_counter() - began)

    if len(problem.layers) <= EXACT_LAYERS:
        return solve_joint(problem, time_limit_s=time_limit_s, slots=slots, warm=warm)
    pool: list[JointResult] = list(warm)
    orders = [tuple(c) for c in candidates] or [problem.layers]
    orders = list(dict.fromkeys(orders))
    big = problem.semantics is Semantics.RESIDENT and len(problem.layers) > FULL_MODEL_LAYERS
    rounds = 0
    floor = max(forced_live_bound(problem, time_limit_s=min(1.0, 0.05 * time_limit_s)),
                live_cut_bound(problem, time_limit_s=min(1.0, 0.05 * time_limit_s)))

    def done(r: JointResult) -> bool:
        return r.non_compulsory_bytes <= floor + 0.5

    if big:
        from mapper.arena import online_arena

        for cand in orders:
            pool += [online_arena(problem, cand, policy) for policy in ("belady", "min-bytes")]
        for i, cand in enumerate(orders):
            if left() < 0.75 * time_limit_s or done(min(pool, key=lambda r: r.non_compulsory_bytes)):
                break
            same = [r for r in pool if r.order == cand]
            found = relax_and_pack(problem, order=cand, time_limit_s=max(0.2, (left() - 0.75 * time_limit_s)
                                                                        / (len(orders) - i)),
                                   warm=min(same, key=lambda r: r.non_compulsory_bytes) if same else None)
            if found is not None:
                pool.append(found)
        if not pool:
            pool.append(spill_all(problem, problem.indices(orders[0])))
        best = min(pool, key=lambda r: r.non_compulsory_bytes)
        while left() > 0.5 * time_limit_s and not done(best):
            found = relax_and_pack(problem, reference=best.order, band=band, time_limit_s=left() - 0.5 * time_limit_s,
                                   warm=best)
            rounds += 1
            if found is None or found.non_compulsory_bytes >= best.non_compulsory_bytes:
                break
            best = found
        estimate = _estimated_slots(problem, best.order, slots)
        # the full ILP's build alone takes about this long (Python, ~0.25 ms a residency column)
        refine_s = 2 * (0.3 + 3e-4 * estimate) if estimate <= FULL_MODEL_SLOT_STEPS else 0.0
        best = _search_orders(problem, best, lambda: left() - refine_s, time_limit_s, window, slots, floor)
        pool.append(best)
        if refine_s and left() > refine_s and not done(best):
            try:
                pool.append(solve_joint(problem, order=best.order, time_limit_s=left(), slots=slots,
                                        warm=[r for r in pool if r.order == best.order]))
            except MappingError as e:
                _log.info("%s: refining the best order: %s", problem.name, e)
    else:
        for i, cand in enumerate(orders):
            share = max(0.2, left() * 0.4 / max(1, len(orders) - i))
            try:
                pool.append(_fixed(problem, problem.indices(cand), share, slots,
                                   [r for r in pool if r.order == cand]))
            except MappingError as e:  # no solution within its share of the time: the candidate drops out
                _log.info("%s: candidate order %d: %s", problem.name, i, e)
        if not pool:
            raise MappingError(f"Joint problem {problem.name!r}: no candidate order solved in {time_limit_s} s")
        best = min(pool, key=lambda r: r.non_compulsory_bytes)
        while left() > 0.5 * time_limit_s and not done(best):
            found = solve_joint(problem, reference=best.order, band=band, slots=slots,
                                time_limit_s=left() - 0.4 * time_limit_s, warm=[best])
            rounds += 1
            if found.non_compulsory_bytes >= best.non_compulsory_bytes:
                break
            best = found
        best = _search_orders(problem, best, left, time_limit_s, window, slots, floor)
    best = min(pool + [best], key=lambda r: r.non_compulsory_bytes)
    _log.info("%s: joint search %d B non-compulsory after %d band rounds (%.1fs)", problem.name,
              best.non_compulsory_bytes, rounds, time.perf_counter() - began)
    return dataclasses.replace(best, time_s=time.perf_counter() - began,
                               details={**best.details, "band_rounds": rounds})


# -- minimum peak over schedules ----------------------------------------------------------------

def peak_bytes(problem: JointProblem, order: Sequence[int]) -> int:
    """The peak of live bytes in ``order``: a tensor is live from its producer (first use for inputs)
    to its last use, and takes the running layer's working space with it."""
    step_of = _step_of(order)
    live = [problem.reserved_bytes[order[s]] for s in range(len(order))]
    for t in problem.tensors:
        ev = t.events(step_of)
        if ev:
            for s in range(ev[0], ev[-1] + 1):
                live[s] += t.size_bytes
    return max(live, default=0)


def min_peak(problem: JointProblem, *, reference: Sequence[str] | None = None, band: int | None = None,
             time_limit_s: float = 10.0, warm: Sequence[Sequence[str]] = ()) -> tuple[tuple[str, ...], int, float]:
    """The order with the least peak of live bytes (:func:`peak_bytes`), that peak, and a lower bound
    (equal when proven optimal; with a ``band`` the bound is the band's)."""
    n = len(problem.layers)
    ref = problem.indices(reference) if reference is not None else None
    windows = _windows(problem, ref, band)
    c = _Cols()
    scale = max(1.0, max((t.size_bytes for t in problem.tensors), default=1) / 1024.0)
    x = {}
    for i in range(n):
        for s in windows[i]:
            x[(i, s)] = c.col(0.0, 0.0, 1.0, True)
        c.row([(x[(i, s)], 1.0) for s in windows[i]], 1.0, 1.0)
    at_step: list[list[int]] = [[] for _ in range(n)]
    for (i, s) in x:
        at_step[s].append(i)
    for s in range(n):
        c.row([(x[(i, s)], 1.0) for i in at_step[s]], 1.0, 1.0)
    for i in range(n):
        for p in set(problem.preds[i]):
            c.row([(x[(i, s)], float(s)) for s in windows[i]] + [(x[(p, s)], -float(s)) for s in windows[p]],
                  lower=1.0)
    peak = c.col(1.0, 0.0, highspy.kHighsInf, False)
    live_terms: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for t in problem.tensors:
        users = sorted(set(t.consumers))
        firsts = [t.producer] if t.producer is not None else users
        if not firsts:
            continue
        lasts = users or firsts
        lo = min(windows[f].start for f in firsts)
        hi = max(windows[u].stop - 1 for u in lasts)
        size = t.size_bytes / scale
        for s in range(lo, hi + 1):
            col = c.col(0.0, 0.0, 1.0, False)
            live_terms[s].append((col, size))
            for f in firsts:
                for u in lasts:
                    # live at s if the first event is at or before s and the last event u is at or after s
                    started = [(x[(f, q)], -1.0) for q in windows[f] if q <= s]
                    ended = [(x[(u, q)], 1.0) for q in windows[u] if q < s]
                    c.row([(col, 1.0), *started, *ended], lower=0.0)
    for s in range(n):
        reserve = [(x[(i, s)], problem.reserved_bytes[i] / scale) for i in at_step[s] if problem.reserved_bytes[i]]
        c.row([*live_terms[s], *reserve, (peak, -1.0)], upper=0.0)
    h = c.highs(0.0)
    h.setOptionValue("time_limit", max(0.05, float(time_limit_s)))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    best_order: tuple[int, ...] | None = None
    for cand in warm:
        idx = problem.indices(cand)
        if best_order is None or peak_bytes(problem, idx) < peak_bytes(problem, best_order):
            best_order = idx
    if best_order is not None and all((i, s) in x for s, i in enumerate(best_order)):
        v = [0.0] * len(c.cost)
        for s, i in enumerate(best_order):
            v[x[(i, s)]] = 1.0
        sol = highspy.HighsSolution()
        sol.col_value = v
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    info = h.getInfo()
    bound = info.mip_dual_bound * scale if math.isfinite(info.mip_dual_bound) else 0.0
    if info.primal_solution_status == 2:
        values = h.getSolution().col_value
        order = [0] * n
        for (i, s), col in x.items():
            if values[col] > 0.5:
                order[s] = i
        if best_order is None or peak_bytes(problem, order) <= peak_bytes(problem, best_order):
            best_order = tuple(order)
    if best_order is None:
        raise MappingError(f"{problem.name}: no schedule found for the minimum peak in {time_limit_s} s")
    value = peak_bytes(problem, best_order)
    return problem.names(best_order), value, min(float(value), math.ceil(bound - 1e-6) if bound else 0.0)


def schedule(graph: Graph, arch: Accelerator, working: Mapping[str, int], *, time_limit_s: float = 10.0,
             candidates: Sequence[Sequence[str]] = (), reread: Mapping[tuple[str, str], float] | None = None,
             weight_bytes: Mapping[str, int] | None = None) -> tuple[tuple[str, ...], MemoryProblem, JointResult]:
    """The operator order for :func:`mapper.map_graph` (``schedule="joint"``): :func:`optimise` on the
    stream-semantics joint problem with the layers' working space ``working``, then the gap model of
    that order for the allocator (with ``reread`` factors, :func:`mapper.rereads.reread_factors`, and
    ``weight_bytes``, :func:`mapper.lifetimes.loaded_weight_bytes`).
    ``candidates`` default to :func:`mapper.order.candidate_orders`."""
    from mapper.order import candidate_orders

    problem = joint_problem(graph, arch, reserved=dict(working))
    result = optimise(problem, candidates=list(candidates) or candidate_orders(graph), time_limit_s=time_limit_s)
    memory = problem_from_graph(graph, arch, order=result.order, reserved=dict(working), reread=reread,
                                weight_bytes=weight_bytes)
    _log.info("%s: joint schedule %d B non-compulsory (%s, bound %.0f) in %.1fs", graph.name,
              result.non_compulsory_bytes, result.status, result.bound, result.time_s)
    return result.order, memory, result
