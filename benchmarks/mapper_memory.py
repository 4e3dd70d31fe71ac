"""Benchmark: graph-level scratchpad allocation, ILP against the baselines.

For every zoo model, every ONNX graph in ``../shared/data/onnx/`` and a DenseNet-121 built here (the
zoo lacks one; it exercises the windowed ILP), at three scratchpad sizes where spilling happens
(1/8, 1/4 and 1/2 of the model's peak live bytes of candidate tensors, at least 64 KiB), on the
``gemmini`` preset's array and formats, this prints:

* compulsory DRAM traffic, and the traffic of ``none``, ``greedy``, ``firstfit`` and ``ilp``;
* the share of non-compulsory traffic the ILP removes against each baseline, and against greedy's
  *avoidable* traffic (``-greedy-av%``): its non-compulsory traffic minus the part no allocator can
  avoid (tensors too big for the space left at some step of a gap, streamed by the layer's tiling);
* the ILP's solve time, bound gap and status (``optimal``, ``gap_reached``, ``windowed``, ...).

Every allocation is checked with :func:`mapper.memory.check_allocation`.

Then, at the same sizes, the whole mapper (:func:`mapper.map_graph`: working space per layer, order,
allocation, command program, :func:`mapper.check.check_plan`) with each allocator, simulated: the
plan's DRAM bytes (tile traffic included), the simulator's DRAM bytes (must be equal), and cycles.
Here each layer keeps the working space its mappings want (not the minimal one above), so less room
is left for residents.

Results are written to ``benchmarks/results/mapper_memory.json``. Run:
``.venv/bin/python benchmarks/mapper_memory.py`` (``--quick`` for three models; ``--time-limit``
seconds per ILP, default 10; ``--no-plans`` skips the second table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import mapper
import sim
from accel.config import load as load_arch
from mapper.allocate import allocation_from_gaps
from mapper.memory import METHODS, allocate, check_allocation, problem_from_graph
from workloads import load, zoo
from workloads.graph import Graph

ROOT = Path(__file__).resolve().parents[1]
ONNX_DIR = ROOT.parent / "shared" / "data" / "onnx"
OUT = ROOT / "benchmarks" / "results" / "mapper_memory.json"
FRACTIONS = (0.125, 0.25, 0.5)


def densenet121(batch: int = 1) -> Graph:
    """torchvision ``densenet121`` (:mod:`workloads.zoo_cosma`)."""
    return zoo.build("densenet121", batch=batch)


def _workloads(quick: bool) -> list[tuple[str, Graph]]:
    if quick:
        return [(n, zoo.build(n)) for n in ("resnet18", "mobilenet_v2", "bert_base_layer")]
    out = [(n, zoo.build(n)) for n in zoo.names() if n not in zoo.LLM_MODELS]
    out += [(f"onnx:{p.stem}", load(p)) for p in sorted(ONNX_DIR.glob("*.onnx"))]
    out.append(("densenet121", densenet121()))
    return out


def _peak_live_bytes(graph: Graph, arch: object) -> int:
    problem = problem_from_graph(graph, arch, capacity_bytes=1 << 50)  # type: ignore[arg-type]
    live = [0] * len(problem.steps)
    for g in problem.gaps:
        for s in range(g.start, g.end + 1):
            live[s] += g.size_bytes
    return max(live)


def _removed(baseline: int, ilp: int) -> float | None:
    """Share of ``baseline``'s non-compulsory traffic the ILP removes (None if it has none)."""
    return None if baseline <= 0 else 100.0 * (baseline - ilp) / baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small models only")
    parser.add_argument("--time-limit", type=float, default=10.0, help="ILP time limit per problem, seconds")
    parser.add_argument("--arch", default="gemmini", help="accelerator preset or TOML file")
    parser.add_argument("--no-plans", action="store_true", help="allocation table only (no map_graph + simulate)")
    parser.add_argument("--plans-only", action="store_true", help="the whole-mapper table only")
    args = parser.parse_args()
    if args.plans_only:
        arch = load_arch(args.arch)
        graphs = dict(_workloads(args.quick))
        rows = [{"model": name, "scratchpad_bytes": max(64 * 1024, int(_peak_live_bytes(g, arch) * f) // 1024 * 1024)}
                for name, g in graphs.items() for f in FRACTIONS]
        plans = _plan_table(arch, rows, graphs, args.time_limit)
        out = OUT.with_name("mapper_plans.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"arch": arch.name, "plans": plans}, indent=2) + "\n")
        baselines = ("none", "greedy", "firstfit")
        never_worse = all(r["ilp_plan_dram_bytes"] <= min(r[f"{m}_plan_dram_bytes"] for m in baselines) for r in plans)
        print(f"simulator agrees: {all(r['simulator_agrees'] for r in plans)}; "
              f"ilp plan never worse than a baseline's: {never_worse}")
        return
    arch = load_arch(args.arch)
    rows = []
    head = (f"{'model':<20} {'spad':>8} {'gaps':>5} {'compulsory':>11} {'none':>11} {'greedy':>11} {'firstfit':>11} "
            f"{'ilp':>11} {'-none%':>7} {'-greedy%':>8} {'-ff%':>6} {'-greedy-av%':>11} "
            f"{'time_s':>7} {'gap':>7} status")
    print(f"arch {arch.name}; DRAM bytes; -X% = share of X's non-compulsory traffic the ILP removes")
    print(head)
    print("-" * len(head))
    for name, graph in _workloads(args.quick):
        peak = _peak_live_bytes(graph, arch)
        for fraction in FRACTIONS:
            capacity = max(64 * 1024, int(peak * fraction) // 1024 * 1024)
            problem = problem_from_graph(graph, arch, capacity_bytes=capacity)
            results = {}
            for method in METHODS:
                began = time.perf_counter()
                allocation = allocate(problem, method=method, time_limit_s=args.time_limit)
                elapsed = time.perf_counter() - began
                check_allocation(problem, allocation)
                results[method] = (allocation, elapsed)
            ilp = results["ilp"][0]
            every_gap = {g.id: 0 for g in problem.gaps if g.allowed}  # offsets do not change the cost
            forced = allocation_from_gaps(problem, every_gap, "forced").non_compulsory_bytes
            nc = {m: a.non_compulsory_bytes for m, (a, _) in results.items()}
            for m in METHODS:
                assert nc[m] >= nc["ilp"], (name, capacity, m)
            row = {
                "model": name, "scratchpad_bytes": capacity, "fraction_of_peak": fraction,
                "peak_live_bytes": peak, "steps": len(problem.steps),
                "candidate_gaps": sum(g.allowed for g in problem.gaps),
                "compulsory_dram_bytes": problem.compulsory_dram_bytes,
                **{f"{m}_dram_bytes": a.dram_bytes for m, (a, _) in results.items()},
                **{f"{m}_non_compulsory_bytes": nc[m] for m in METHODS},
                "forced_non_compulsory_bytes": forced,
                **{f"removed_vs_{m}_pct": _removed(nc[m], nc["ilp"]) for m in ("none", "greedy", "firstfit")},
                "removed_vs_greedy_avoidable_pct": _removed(nc["greedy"] - forced, nc["ilp"] - forced),
                "ilp_time_s": results["ilp"][1], "ilp_status": ilp.status, "ilp_objective": ilp.objective,
                "ilp_bound": ilp.bound, "ilp_gap": ilp.gap, "ilp_windows": ilp.windows,
            }
            rows.append(row)

            def pct(value: float | None) -> str:
                return "-" if value is None else f"{value:.1f}"

            print(f"{name:<20} {capacity // 1024:>7}K {row['candidate_gaps']:>5} {problem.compulsory_dram_bytes:>11,} "
                  f"{results['none'][0].dram_bytes:>11,} {results['greedy'][0].dram_bytes:>11,} "
                  f"{results['firstfit'][0].dram_bytes:>11,} {ilp.dram_bytes:>11,} "
                  f"{pct(row['removed_vs_none_pct']):>7} {pct(row['removed_vs_greedy_pct']):>8} "
                  f"{pct(row['removed_vs_firstfit_pct']):>6} {pct(row['removed_vs_greedy_avoidable_pct']):>11} "
                  f"{row['ilp_time_s']:>7.2f} {ilp.gap or 0:>7.4f} "
                  f"{ilp.status}{f' ({ilp.windows} windows)' if ilp.windows > 1 else ''}", flush=True)

    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.fmean(values) if values else float("nan")

    total = {m: sum(r[f"{m}_non_compulsory_bytes"] for r in rows) for m in METHODS}
    summary = {
        "mean_removed_vs_none_pct": mean("removed_vs_none_pct"),
        "mean_removed_vs_greedy_pct": mean("removed_vs_greedy_pct"),
        "mean_removed_vs_firstfit_pct": mean("removed_vs_firstfit_pct"),
        "mean_removed_vs_greedy_avoidable_pct": mean("removed_vs_greedy_avoidable_pct"),
        "aggregate_removed_vs_greedy_pct": _removed(total["greedy"], total["ilp"]),
        "aggregate_removed_vs_none_pct": _removed(total["none"], total["ilp"]),
        "optimal_within_1pct": sum(1 for r in rows if r["ilp_gap"] is not None and r["ilp_gap"] <= 0.01),
        "problems": len(rows),
        "max_ilp_time_s": max(r["ilp_time_s"] for r in rows),
    }
    plans = [] if args.no_plans else _plan_table(arch, rows, {name: g for name, g in _workloads(args.quick)},
                                                 args.time_limit)
    if plans:
        summary["plans_simulator_agrees"] = all(r["simulator_agrees"] for r in plans)
        summary["plans_ilp_never_worse_dram"] = all(r["ilp_plan_dram_bytes"] <= min(
            r[f"{m}_plan_dram_bytes"] for m in ("none", "greedy", "firstfit")) for r in plans)
        summary["mean_plan_dram_ilp_vs_none"] = statistics.fmean(
            r["ilp_plan_dram_bytes"] / r["none_plan_dram_bytes"] for r in plans)
        summary["mean_plan_cycles_ilp_vs_none"] = statistics.fmean(
            r["ilp_cycles"] / r["none_cycles"] for r in plans)
        summary["max_map_graph_ilp_s"] = max(r["ilp_map_s"] for r in plans)
    print()
    for key, value in summary.items():
        print(f"{key:<34} {value:.2f}" if isinstance(value, float) else f"{key:<34} {value}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"arch": arch.name, "time_limit_s": args.time_limit, "summary": summary,
                               "rows": rows, "plans": plans}, indent=2) + "\n")
    print(f"\nwrote {OUT.relative_to(ROOT)}")


def _plan_table(arch: object, rows: list[dict], graphs: dict[str, Graph], time_limit: float) -> list[dict]:
    print("\nwhole mapper (map_graph) per allocator, simulated: plan DRAM bytes (M), cycles (M)")
    head = (f"{'model':<20} {'spad':>8} {'none':>8} {'greedy':>8} {'firstfit':>8} {'ilp':>8} {'ilp/none':>8} "
            f"{'cyc none':>9} {'cyc ilp':>9} {'sim=plan':>8} {'ilp map s':>9}")
    print(head)
    print("-" * len(head))
    out = []
    for r in rows:
        graph = graphs[r["model"]]
        row = {"model": r["model"], "scratchpad_bytes": r["scratchpad_bytes"]}
        agrees = True
        for method in ("none", "greedy", "firstfit", "ilp"):
            began = time.perf_counter()
            plan = mapper.map_graph(graph, arch, mapper.MapOptions(  # type: ignore[arg-type]
                allocator=method, scratchpad_bytes=r["scratchpad_bytes"], time_limit_s=time_limit))
            row[f"{method}_map_s"] = time.perf_counter() - began
            result = sim.simulate(plan)
            agrees &= result.dram_bytes == plan.dram_bytes
            row[f"{method}_plan_dram_bytes"] = plan.dram_bytes
            row[f"{method}_cycles"] = result.total_cycles
        row["simulator_agrees"] = agrees
        out.append(row)
        print(f"{r['model']:<20} {r['scratchpad_bytes'] // 1024:>7}K "
              + " ".join(f"{row[f'{m}_plan_dram_bytes'] / 1e6:>8.2f}" for m in ("none", "greedy", "firstfit", "ilp"))
              + f" {row['ilp_plan_dram_bytes'] / row['none_plan_dram_bytes']:>8.2f}"
              f" {row['none_cycles'] / 1e6:>9.2f} {row['ilp_cycles'] / 1e6:>9.2f} {str(agrees):>8}"
              f" {row['ilp_map_s']:>9.2f}", flush=True)
    return out


if __name__ == "__main__":
    main()
