"""The graph-level memory allocators: ILP optimality, the checker, zoo models, infeasible inputs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accel.config import load as load_arch
from accel.errors import MappingError
from mapper.allocate import allocate_firstfit, allocate_greedy
from mapper.ilp import solve_ilp
from mapper.memory import (
    METHODS,
    Allocation,
    MemoryProblem,
    MemoryTensor,
    TensorAllocation,
    allocate,
    check_allocation,
    problem_from_graph,
)
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.graph import TensorKind

# -- brute force ------------------------------------------------------------------------------------


def _cost(problem: MemoryProblem, kept: set[int]) -> int:
    """Non-compulsory DRAM bytes when exactly the gaps ``kept`` stay on chip, counted from scratch."""
    total = 0
    for ti, t in enumerate(problem.tensors):
        missed = sum(1 for g in problem.tensor_gaps[ti] if g not in kept)
        total += t.size_bytes * missed
        if t.kind is TensorKind.ACTIVATION and not t.graph_output and missed:
            total += t.size_bytes
    return total


def _packable(items: Sequence[tuple[int, int, int, int]]) -> bool:
    """Can items ``(first_step, last_step, size, limit)`` get offsets with ``offset + size <= limit``
    and no two items alive at the same step overlapping? Exhaustive: every placement order, each item
    at its lowest free offset (some order reproduces any feasible solution, offsets never higher)."""
    for order in itertools.permutations(items):
        placed: list[tuple[int, int, int, int]] = []
        for first, last, size, limit in order:
            blocks = sorted((o, o + s) for f, la, o, s in placed if f <= last and first <= la)
            offset = 0
            for start, end in blocks:
                if offset + size <= start:
                    break
                offset = max(offset, end)
            if offset + size > limit:
                break
            placed.append((first, last, offset, size))
        else:
            return True
    return False


def _brute_force(problem: MemoryProblem) -> int:
    allowed = [g.id for g in problem.gaps if g.allowed]
    subsets = []
    for r in range(len(allowed) + 1):
        subsets.extend(set(c) for c in itertools.combinations(allowed, r))
    for kept in sorted(subsets, key=lambda k: _cost(problem, k)):
        items = []
        for ids in problem.tensor_gaps:  # maximal runs of consecutive kept gaps: one offset each
            run: list[int] = []
            for gid in [*ids, None]:
                if gid is not None and gid in kept:
                    run.append(gid)
                elif run:
                    gs = [problem.gaps[i] for i in run]
                    items.append((gs[0].start, gs[-1].end, gs[0].size_bytes, min(g.limit_bytes for g in gs)))
                    run = []
        if _packable(items):
            return _cost(problem, kept)
    raise AssertionError("the empty allocation is always feasible")


@st.composite
def _problems(draw: st.DrawFn) -> MemoryProblem:
    steps = draw(st.integers(3, 6))
    capacity = draw(st.integers(3, 10))
    reserved = tuple(draw(st.lists(st.integers(0, 2), min_size=steps, max_size=steps)))
    tensors = []
    budget = 10  # gaps, to keep the exhaustive search small
    for i in range(draw(st.integers(3, 7))):
        kind = draw(st.sampled_from([TensorKind.ACTIVATION, TensorKind.ACTIVATION, TensorKind.INPUT]))
        size = draw(st.integers(1, max(1, capacity // 2)))
        if kind is TensorKind.ACTIVATION:
            producer = draw(st.integers(0, steps - 2))
            uses = draw(st.sets(st.integers(producer + 1, steps - 1), min_size=1, max_size=min(2, budget)))
            output = draw(st.booleans()) and draw(st.booleans())
            gaps = len(uses)
        else:
            producer, output = None, False
            uses = draw(st.sets(st.integers(0, steps - 1), min_size=2, max_size=min(3, budget + 1)))
            gaps = len(uses) - 1
        budget -= gaps
        tensors.append(MemoryTensor(f"t{i}", size, kind, producer, tuple(sorted(uses)), graph_output=output))
        if budget <= 0:
            break
    return MemoryProblem("random", capacity, tuple(f"l{i}" for i in range(steps)), reserved, tuple(tensors))


#: HiGHS once reported this problem's optimum (0) while handing back its warm start (2 B) as the solution
_WARM_START_RETURNED = MemoryProblem("random", 4, ("l0", "l1", "l2"), (0, 0, 2), (
    MemoryTensor("t0", 1, TensorKind.ACTIVATION, 0, (1,)), MemoryTensor("t1", 2, TensorKind.ACTIVATION, 0, (1,)),
    MemoryTensor("t2", 1, TensorKind.ACTIVATION, 1, (2,))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems())
@example(_WARM_START_RETURNED)
def test_ilp_matches_brute_force(problem: MemoryProblem) -> None:
    allocation = allocate(problem, method="ilp", mip_gap=0.0)
    check_allocation(problem, allocation)
    assert allocation.non_compulsory_bytes == _brute_force(problem), allocation.to_dict()
    assert allocation.status == "optimal"
    assert allocation.objective == allocation.non_compulsory_bytes
    full = solve_ilp(problem, mip_gap=0.0, shortcut=False)  # the whole model, not the packed relaxation
    check_allocation(problem, full)
    assert full.non_compulsory_bytes == allocation.non_compulsory_bytes
    for method in ("none", "greedy", "firstfit"):
        baseline = allocate(problem, method=method)
        check_allocation(problem, baseline)
        assert baseline.non_compulsory_bytes >= allocation.non_compulsory_bytes, method


def _fragmented() -> MemoryProblem:
    """Every step's sum fits, but only if ``p`` and ``r`` sit side by side (or at both ends) can ``s``
    (two bytes) find two adjacent free bytes at step 2; placing by schedule order does not do that."""
    act = TensorKind.ACTIVATION
    tensors = (
        MemoryTensor("p", 1, act, 0, (3,)),  # steps 0-3
        MemoryTensor("q", 1, act, 0, (1,)),  # steps 0-1
        MemoryTensor("r", 1, act, 0, (3,)),  # steps 0-3
        MemoryTensor("f", 1, act, 0, (1,)),  # steps 0-1
        MemoryTensor("s", 2, act, 2, (3,)),  # steps 2-3
    )
    return MemoryProblem("fragmented", 4, ("l0", "l1", "l2", "l3"), (0, 0, 0, 0), tensors)


def test_offsets_matter() -> None:
    problem = _fragmented()
    allocation = allocate(problem, method="ilp", mip_gap=0.0)
    check_allocation(problem, allocation)
    assert allocation.non_compulsory_bytes == 0 == _brute_force(problem)
    assert all(t.intervals for t in allocation.tensors.values())
    p, r = allocation.tensors["p"].intervals[0][2], allocation.tensors["r"].intervals[0][2]
    assert {p, r} in ({0, 1}, {2, 3}, {0, 3})
    assert allocate(problem, method="firstfit").non_compulsory_bytes > 0  # p, q, r, f at 0, 1, 2, 3


# -- the checker ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small() -> tuple[MemoryProblem, Allocation]:
    problem = _fragmented()
    return problem, allocate(problem, method="ilp")


def _with(allocation: Allocation, name: str, **changes: object) -> Allocation:
    tensors = dict(allocation.tensors)
    tensors[name] = replace(tensors[name], **changes)
    return replace(allocation, tensors=tensors)


def test_checker_catches_overlap(small: tuple[MemoryProblem, Allocation]) -> None:
    problem, allocation = small
    q, p = allocation.tensors["q"], allocation.tensors["p"]
    moved = _with(allocation, "q", intervals=((q.intervals[0][0], q.intervals[0][1], p.intervals[0][2]),))
    with pytest.raises(MappingError, match=r"^Tensors '(p|q)' at \[\d+, \d+\) and '(p|q)' at .* overlap at step 0"):
        check_allocation(problem, moved)


def test_checker_catches_over_capacity(small: tuple[MemoryProblem, Allocation]) -> None:
    problem, allocation = small
    s = allocation.tensors["s"]
    raised = _with(allocation, "s", intervals=((s.intervals[0][0], s.intervals[0][1], 3),))
    with pytest.raises(MappingError, match=r"^Tensor 's' at \[3, 5\) exceeds the 4 B available at step 2"):
        check_allocation(problem, raised)


def test_checker_catches_missing_operand(small: tuple[MemoryProblem, Allocation]) -> None:
    problem, allocation = small
    dropped = _with(allocation, "q", intervals=())
    with pytest.raises(MappingError, match=r"^Tensor 'q' is used or loaded at step 1 \(layer 'l1'\) but is neither"):
        check_allocation(problem, dropped)


def test_checker_catches_wrong_totals(small: tuple[MemoryProblem, Allocation]) -> None:
    problem, allocation = small
    with pytest.raises(MappingError, match=r"^Allocation claims 7 B read and"):
        check_allocation(problem, replace(allocation, dram_read_bytes=7))


def test_checker_catches_missing_write() -> None:
    problem = MemoryProblem("w", 1, ("l0", "l1"), (0, 0),
                            (MemoryTensor("x", 2, TensorKind.ACTIVATION, 0, (1,)),))
    allocation = allocate(problem, method="none")
    check_allocation(problem, allocation)
    broken = _with(allocation, "x", write_steps=())
    with pytest.raises(MappingError, match=r"^Tensor 'x': must be written to DRAM 1 time\(s\), not 0$"):
        check_allocation(problem, replace(broken, dram_write_bytes=0))


# -- zoo models -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemmini():  # noqa: ANN201 - an Accelerator
    return load_arch("gemmini")


def _peak_live_bytes(problem: MemoryProblem) -> int:
    live = [0] * len(problem.steps)
    for g in problem.gaps:
        for s in range(g.start, g.end + 1):
            live[s] += g.size_bytes
    return max(live)


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "bert_base_layer", "vit_s16_block"])
def test_zoo_ilp_valid_and_never_worse(model: str, gemmini) -> None:  # noqa: ANN001
    graph = zoo.build(model)
    peak = _peak_live_bytes(problem_from_graph(graph, gemmini, capacity_bytes=1 << 40))
    for fraction in (0.125, 0.25, 0.5):
        problem = problem_from_graph(graph, gemmini, capacity_bytes=max(64 * 1024, int(peak * fraction)))
        results = {m: allocate(problem, method=m, time_limit_s=5.0) for m in METHODS}
        for m, a in results.items():
            check_allocation(problem, a)
            assert a.non_compulsory_bytes >= results["ilp"].non_compulsory_bytes, (model, fraction, m)
        assert results["none"].dram_bytes == problem.unreused_dram_bytes
        assert results["none"].non_compulsory_bytes > results["ilp"].non_compulsory_bytes  # it spills, and helps
        assert results["ilp"].bound is not None and results["ilp"].gap is not None
        assert results["ilp"].gap <= 0.01


def test_windowed_ilp_matches_whole(gemmini) -> None:  # noqa: ANN001
    problem = problem_from_graph(zoo.build("resnet18"), gemmini, capacity_bytes=300 * 1024)
    whole = allocate(problem, method="ilp")
    warm = (allocate_greedy(problem), allocate_firstfit(problem))
    windowed = solve_ilp(problem, warm=warm, window_gaps=20, shortcut=False)
    check_allocation(problem, windowed)
    assert windowed.windows > 1
    assert windowed.non_compulsory_bytes <= allocate(problem, method="greedy").non_compulsory_bytes
    assert windowed.non_compulsory_bytes >= whole.non_compulsory_bytes


def test_views_share_their_input_buffer(gemmini) -> None:  # noqa: ANN001
    b = GraphBuilder("views")
    x = b.input("x", (1, 64, 8, 8))
    y = b.activation(x, "relu", "relu")
    z = b.flatten(y, 1, "flatten")
    b.linear(z, 10, name="fc")
    problem = problem_from_graph(b.build(), gemmini)
    relu_out = problem.tensor(y)
    assert relu_out.aliases == (z,)
    assert relu_out.use_steps == (2,)  # read by fc, through the flatten view
    assert problem.reserved_bytes[1] == 0


# -- infeasible inputs ------------------------------------------------------------------------------

def test_zero_capacity_is_an_error(gemmini) -> None:  # noqa: ANN001
    with pytest.raises(MappingError, match=r"^Scratchpad capacity for resident tensors must be a positive "
                                           r"integer, not 0$"):
        problem_from_graph(zoo.build("resnet18"), gemmini, capacity_bytes=0)


def test_tensor_whose_smallest_tile_cannot_fit_is_named(gemmini) -> None:  # noqa: ANN001
    b = GraphBuilder("wide")
    x = b.input("x", (1, 4, 100_000))
    b.softmax(x, -1, "softmax")
    with pytest.raises(MappingError, match=r"^Tensor 'x': layer 'softmax' \(step 0\) needs 200000 B of it on chip"):
        problem_from_graph(b.build(), gemmini, capacity_bytes=256 * 1024)


def test_reserved_above_capacity_is_an_error(gemmini) -> None:  # noqa: ANN001
    with pytest.raises(MappingError, match=r"^Layer 'conv1' \(step 0\): reserved working space must be"):
        problem_from_graph(zoo.build("resnet18"), gemmini, capacity_bytes=1024, reserved=2048)


def test_schedule_must_be_topological(gemmini) -> None:  # noqa: ANN001
    graph = zoo.build("resnet18")
    order = [layer.name for layer in graph.layers]
    order[0], order[1] = order[1], order[0]
    with pytest.raises(MappingError, match=r"runs before 'conv1', which produces its input"):
        problem_from_graph(graph, gemmini, order=order)


def test_big_tensors_are_streamed_not_errors(gemmini) -> None:  # noqa: ANN001
    problem = problem_from_graph(zoo.build("resnet18"), gemmini, capacity_bytes=64 * 1024)
    allocation = allocate(problem, method="ilp")
    check_allocation(problem, allocation)
    big = max(problem.tensors, key=lambda t: t.size_bytes)
    assert allocation.tensors[big.name].intervals == ()


def test_unknown_method(small: tuple[MemoryProblem, Allocation]) -> None:
    with pytest.raises(MappingError, match=r"^Allocator must be one of none, greedy, firstfit, ilp, not 'lru'$"):
        allocate(small[0], method="lru")


def test_allocation_summary_is_json_ready(small: tuple[MemoryProblem, Allocation]) -> None:
    summary = small[1].to_dict()
    for key in ("dram_bytes", "compulsory_dram_bytes", "solve_time_s", "objective", "bound", "gap"):
        assert key in summary
    assert isinstance(small[1].tensors["q"], TensorAllocation)


def test_only_constants_the_program_loads_are_tensors_of_the_problem(gemmini) -> None:  # noqa: ANN001
    # a GEMM's bias and a norm's scale and shift are the layer's configuration: the program never loads them
    names = {t.name for t in problem_from_graph(zoo.build("bert_base_layer"), gemmini).tensors}
    assert "attention.q.weight" in names and "attention.q.bias" not in names
    names = {t.name for t in problem_from_graph(zoo.build("mobilenet_v1"), gemmini).tensors}
    assert "conv1.pw.weight" in names and "conv1.pw.bn.weight" not in names and "conv1.pw.bn.bias" not in names


@pytest.mark.parametrize("model", ["mobilenet_v1", "bert_base_layer"])
def test_compulsory_traffic_is_a_lower_bound_of_the_program_when_everything_fits(model) -> None:  # noqa: ANN001
    from mapper import MapOptions, map_with_baselines

    document = map_with_baselines(zoo.build(model), load_arch("tpu-v1"), MapOptions(allocator="ilp")).to_dict()
    assert document["compulsory_dram_bytes"] <= document["tensor_dram_bytes"] <= document["dram_bytes"]
