"""The joint order-and-allocation ILP (mapper.joint) against a brute force written here.

On seeded random branchy graphs of up to 8 operators, the brute force enumerates every topological
order and, per order, every choice of which gaps between a tensor's events stay on chip (under resident
semantics every event is on chip too), prices it, and proves it placeable by trying every placement
order of its on-chip runs at the lowest free offset (which reaches every feasible placement). The joint
ILP must reach exactly the brute force's optimum, and its answer must pass check_joint.
"""

from __future__ import annotations

import itertools
import random

import pytest

from accel.errors import MappingError
from mapper.joint import JointProblem, JointTensor, Semantics, check_joint, min_peak, peak_bytes, solve_joint
from workloads.graph import TensorKind


def random_problem(rng: random.Random, n: int, semantics: Semantics) -> JointProblem:
    """A DAG of ``n`` layers, each producing one tensor and reading one or two earlier tensors."""
    consumers: dict[int, list[int]] = {0: []}  # tensor 0 is the graph input
    preds = []
    for i in range(n):
        ins = rng.sample(range(i + 1), 1 if i == 0 else min(i + 1, rng.choice([1, 2, 2])))
        for t in ins:
            consumers[t].append(i)
        consumers[i + 1] = []
        preds.append(tuple(sorted({t - 1 for t in ins if t > 0})))
    tensors = []
    for j in range(n + 1):
        size = rng.randint(1, 6) * 8
        uses = tuple(sorted(set(consumers[j])))
        if j == 0:
            tensors.append(JointTensor("input", size, TensorKind.INPUT, None, uses))
        else:
            tensors.append(JointTensor(f"t{j}", size, TensorKind.ACTIVATION, j - 1, uses, graph_output=not uses))
    if semantics is Semantics.STREAM:
        tensors = [t for t in tensors if len(t.consumers) + (t.producer is not None) >= 2]
        reserved = tuple(rng.choice([0, 0, 8, 16]) for _ in range(n))
        capacity = rng.randint(4, 14) * 8
    else:
        reserved = (0,) * n
        need = max(sum(t.size_bytes for t in tensors if t.producer == i or i in t.consumers) for i in range(n))
        capacity = need + rng.randint(0, 6) * 8
    return JointProblem("random", tuple(f"l{i}" for i in range(n)), tuple(preds), reserved, tuple(tensors),
                        capacity, semantics)


def orders(problem: JointProblem) -> list[tuple[int, ...]]:
    n = len(problem.layers)
    return [p for p in itertools.permutations(range(n))
            if all(p.index(q) < p.index(i) for i in range(n) for q in problem.preds[i])]


def brute_force(problem: JointProblem) -> int:
    """Least non-compulsory DRAM bytes over every order and every allocation."""
    resident = problem.semantics is Semantics.RESIDENT
    best = None
    for order in orders(problem):
        step = {layer: s for s, layer in enumerate(order)}
        top = [problem.capacity_bytes - problem.reserved_bytes[layer] for layer in order]
        tensors = []
        for t in problem.tensors:
            events = sorted({step[c] for c in t.consumers})
            if t.producer is not None:
                events = [step[t.producer], *events]
            tensors.append((t, events))
        gaps = [(ti, j) for ti, (_, ev) in enumerate(tensors) for j in range(len(ev) - 1)]
        priced = []
        for bits in itertools.product((0, 1), repeat=len(gaps)):
            kept = {g for g, b in zip(gaps, bits, strict=True) if b}
            runs, cost = [], 0
            for ti, (t, ev) in enumerate(tensors):
                # runs of on-chip steps: bridged gaps joined; under resident semantics lone events too
                pieces: list[list[int]] = []
                reads = 0 if t.producer is not None else -1  # an input's first read is compulsory
                for j, e in enumerate(ev):
                    bridged = j > 0 and (ti, j - 1) in kept
                    if bridged:
                        pieces[-1][1] = e
                    else:
                        if j > 0 or t.producer is None:
                            reads += 1  # loaded or streamed at this event
                        if resident or (ti, j) in kept:
                            pieces.append([e, e])
                runs += [(t.size_bytes, a, b) for a, b in pieces]
                cost += reads * t.size_bytes
                if t.producer is not None and not t.graph_output and reads > 0:
                    cost += t.size_bytes
            if best is None or cost < best:
                priced.append((cost, runs))
        for cost, runs in sorted(priced, key=lambda item: item[0]):
            if best is not None and cost >= best:
                break
            if placeable(runs, top):
                best = cost
                break
    assert best is not None
    return best


def placeable(runs: list[tuple[int, int, int]], top: list[int]) -> bool:
    for s in range(len(top)):
        if sum(size for size, a, b in runs if a <= s <= b) > top[s]:
            return False
    for perm in itertools.permutations(runs):
        placed: list[tuple[int, int, int, int]] = []
        ok = True
        for size, a, b in perm:
            clash = sorted((lo, hi) for lo, hi, pa, pb in placed if pa <= b and a <= pb)
            offset = 0
            for lo, hi in clash:
                if lo >= offset + size:
                    break
                offset = max(offset, hi)
            if offset + size > min(top[a:b + 1]):
                ok = False
                break
            placed.append((offset, offset + size, a, b))
        if ok:
            return True
    return False


@pytest.mark.parametrize("semantics", [Semantics.STREAM, Semantics.RESIDENT])
@pytest.mark.parametrize("seed", range(6))
def test_joint_ilp_equals_brute_force(seed: int, semantics: Semantics) -> None:
    rng = random.Random(1000 * seed + (semantics is Semantics.RESIDENT))
    problem = random_problem(rng, rng.randint(5, 7) if semantics is Semantics.STREAM else rng.randint(4, 6),
                             semantics)
    result = solve_joint(problem, time_limit_s=60)
    check_joint(problem, result)
    assert result.status == "optimal"
    assert result.non_compulsory_bytes == brute_force(problem)


def test_joint_ilp_equals_brute_force_on_eight_operators() -> None:
    problem = random_problem(random.Random(0), 8, Semantics.STREAM)
    result = solve_joint(problem, time_limit_s=60)
    check_joint(problem, result)
    assert len(problem.layers) == 8 and result.status == "optimal"
    assert result.non_compulsory_bytes == brute_force(problem)


def test_min_peak_equals_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(4):
        problem = random_problem(rng, 8, Semantics.RESIDENT)
        order, peak, bound = min_peak(problem, time_limit_s=30)
        assert peak == min(peak_bytes(problem, o) for o in orders(problem)) == bound
        assert peak_bytes(problem, problem.indices(order)) == peak


def test_fixed_order_ilp_reports_optimal_with_zero_gap_when_nothing_can_stay() -> None:
    from mapper.ilp import solve_ilp
    from mapper.lifetimes import MemoryProblem, MemoryTensor

    act = TensorKind.ACTIVATION
    problem = MemoryProblem("tight", 100, ("a", "b", "c"), (0, 0, 0), (
        MemoryTensor("x", 150, act, 0, (1, 2)), MemoryTensor("y", 120, act, 1, (2,))))
    result = solve_ilp(problem, mip_gap=0.0)
    assert not any(g.allowed for g in problem.gaps)
    assert (result.status, result.gap) == ("optimal", 0.0)
    assert result.bound == result.objective == result.non_compulsory_bytes == 150 * 3 + 120 * 2


def test_map_graph_joint_schedule_runs_the_joint_order() -> None:
    import sim
    from accel.config import load
    from mapper import MapOptions, map_graph
    from workloads.builder import GraphBuilder

    b = GraphBuilder("inception")
    x = b.input("input", (1, 16, 28, 28))
    branches = [b.conv(x, 32, 1, name=f"b{i}.a") for i in range(3)]
    branches = [b.conv(y, 32, 3, 1, 1, name=f"b{i}.b") for i, y in enumerate(branches)]
    b.concat(branches, 1, "cat")
    graph = b.build()
    arch = load("gemmini")
    plan = map_graph(graph, arch, MapOptions(allocator="ilp", schedule="joint", scratchpad_bytes=96 * 1024,
                                             time_limit_s=20))
    assert plan.allocation is not None and plan.problem is not None
    assert plan.allocation.method == plan.allocation.details["tensors_from"] or \
        plan.allocation.details["tensors_from"] == "ilp"
    assert sim.simulate(plan).dram_bytes == plan.dram_bytes


def test_arena_baselines_are_valid_and_the_joint_optimiser_never_loses_to_them() -> None:
    from mapper.arena import POLICIES, online_arena, tflite_arena
    from mapper.joint import optimise

    rng = random.Random(11)
    for _ in range(3):
        problem = random_problem(rng, 7, Semantics.RESIDENT)
        results = [online_arena(problem, problem.layers, p) for p in POLICIES]
        results += [r for r in (tflite_arena(problem, problem.layers, p) for p in POLICIES) if r is not None]
        for r in results:
            check_joint(problem, r)
        best = optimise(problem, candidates=[problem.layers], time_limit_s=30, warm=results)
        check_joint(problem, best)
        assert best.non_compulsory_bytes <= min(r.non_compulsory_bytes for r in results)


# -- lower bounds and the local search over orders (mapper.order_search) ---------------------------

def test_lower_bounds_never_exceed_the_brute_force_optimum() -> None:
    import dataclasses

    from mapper.joint import forced_live_bound, live_cut_bound, lower_bound

    rng = random.Random(23)
    positive = 0
    for _ in range(10):
        problem = random_problem(rng, rng.randint(5, 6), Semantics.RESIDENT)
        need = max(sum(t.size_bytes for t in problem.tensors if t.producer == i or i in t.consumers)
                   for i in range(len(problem.layers)))
        problem = dataclasses.replace(problem, capacity_bytes=need)  # COSMA's M_R: the tightest budget
        best = brute_force(problem)
        forced, cut = forced_live_bound(problem), live_cut_bound(problem)
        assert forced <= best + 0.5 and cut <= best + 0.5, (forced, cut, best)
        assert lower_bound(problem, time_limit_s=5) <= best + 0.5
        positive += (max(forced, cut) > 0)
    assert positive >= 1  # the bounds prove something on these graphs, not just 0


def test_live_cut_bound_proves_an_attention_block_optimal() -> None:
    """An attention block at COSMA's M_R: while the scores are normalised (s -> p fills the budget),
    the residual x and one of h (not yet projected to v) or v must be off chip, whichever the order:
    the live-cut bound sees the choice, the forced-live bound only x."""
    from mapper.joint import forced_live_bound, live_cut_bound

    act = TensorKind.ACTIVATION
    tensors = (JointTensor("input", 16, TensorKind.INPUT, None, (0,)),
               JointTensor("x", 16, act, 0, (1, 7)), JointTensor("h", 16, act, 1, (2, 3)),
               JointTensor("q", 16, act, 2, (4,)), JointTensor("v", 16, act, 3, (6,)),
               JointTensor("s", 48, act, 4, (5,)), JointTensor("p", 48, act, 5, (6,)),
               JointTensor("ctx", 16, act, 6, (7,)), JointTensor("out", 16, act, 7, (), graph_output=True))
    # l0 embed, l1 norm, l2 q, l3 v, l4 scores (q -> s), l5 softmax (s -> p), l6 context (p, v),
    # l7 residual add (ctx, x)
    preds = ((), (0,), (1,), (1,), (2,), (4,), (3, 5), (0, 6))
    problem = JointProblem("attention", tuple(f"l{i}" for i in range(8)), preds, (0,) * 8, tensors, 96,
                           Semantics.RESIDENT)
    best = brute_force(problem)
    assert best == 2 * (16 + 16)
    assert live_cut_bound(problem) == best
    assert forced_live_bound(problem) == 2 * 16


def _fan_problem() -> JointProblem:
    """l0 makes a 60 B tensor read by l1 and by l5 (which needs nothing else); l1..l4 are a chain of
    40 B tensors. Run in the written order, the 60 B tensor must wait through l2..l4, where only 100 B
    fit; hoisting l5 to right after l0 lets it die at once, and nothing spills."""
    act = TensorKind.ACTIVATION
    tensors = (JointTensor("input", 8, TensorKind.INPUT, None, (0,)),
               JointTensor("big", 60, act, 0, (1, 5)),
               JointTensor("a", 40, act, 1, (2,)), JointTensor("b", 40, act, 2, (3,)),
               JointTensor("c", 40, act, 3, (4,)), JointTensor("d", 8, act, 4, (), graph_output=True),
               JointTensor("e", 8, act, 5, (), graph_output=True))
    preds = ((), (0,), (1,), (2,), (3,), (0,))
    return JointProblem("fan", tuple(f"l{i}" for i in range(6)), preds, (0,) * 6, tensors, 100, Semantics.RESIDENT)


def test_hoist_and_sink_give_topological_orders() -> None:
    from mapper.order_search import hoist, sink

    problem = _fan_problem()
    assert hoist(problem, problem.layers, "l5") == ("l0", "l5", "l1", "l2", "l3", "l4")
    assert sink(problem, ("l0", "l5", "l1", "l2", "l3", "l4"), "l5") == ("l0", "l1", "l2", "l3", "l4", "l5")
    rng = random.Random(5)
    for _ in range(20):
        p = random_problem(rng, 7, Semantics.RESIDENT)
        layer = rng.choice(p.layers)
        for moved in (hoist(p, p.layers, layer), sink(p, p.layers, layer)):
            assert p.is_order(p.indices(moved))


def test_move_search_finds_the_long_hoist_a_window_cannot_reach() -> None:
    from mapper.joint import relax_and_pack
    from mapper.order_search import move_search, window_search

    problem = _fan_problem()
    start = relax_and_pack(problem, order=problem.layers)  # the best allocation in the written order
    assert start is not None and start.non_compulsory_bytes == 120  # "big" written after l0 and read back at l5
    windowed = window_search(problem, start, time_limit_s=10, width=2)
    check_joint(problem, windowed)
    assert windowed.non_compulsory_bytes == 120  # l5 is 4 steps away from where it should run
    moved = move_search(problem, start, time_limit_s=10)
    check_joint(problem, moved)
    assert moved.non_compulsory_bytes == 0 == brute_force(problem)
    assert moved.order.index("l5") < moved.order.index("l2")


def test_order_search_is_valid_and_never_worse_on_random_graphs() -> None:
    from mapper.joint import spill_all
    from mapper.order_search import move_search, window_search

    rng = random.Random(31)
    gained = 0
    for _ in range(4):
        problem = random_problem(rng, 6, Semantics.RESIDENT)
        start = spill_all(problem, problem.indices(problem.layers))
        best = brute_force(problem)
        for found in (window_search(problem, start, time_limit_s=10, width=4),
                      move_search(problem, start, time_limit_s=10)):
            check_joint(problem, found)
            assert best <= found.non_compulsory_bytes <= start.non_compulsory_bytes
            gained += found.non_compulsory_bytes < start.non_compulsory_bytes
    assert gained >= 2
    with pytest.raises(MappingError, match=r"^Window search: the window must span at least 2 steps, not 1$"):
        window_search(problem, start, time_limit_s=1, width=1)
