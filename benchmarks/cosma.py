"""Benchmark: the mapper's joint schedule-and-allocation ILP on COSMA's own terms (Li, Gupta, Malik 2023).

Per model, under COSMA's semantics (:class:`mapper.joint.Semantics` ``resident``: every operand of the
running layer on chip, no working space, int8, whole tensors), at the budgets

Batch norms and activations that follow a convolution or linear layer are folded into it first
(:func:`fusable`, :func:`mapper.joint.fold_into_producers`), as an inference framework's graph has them.

* ``M_R``: the largest inputs + outputs of one layer (the least any plan needs),
* ``M_P``: the least peak of live bytes over schedules (:func:`mapper.joint.min_peak`; nothing spills),
* ``M_H = (M_R + M_P) / 2``,

this prints the non-compulsory DRAM bytes of COSMA's four baselines (TFLite's offline greedy-by-size
arena, :func:`mapper.arena.tflite_arena`, x {Belady, min-bytes} replacement x {default, min-peak
order}; ``fail`` where the arena does not fit), of the joint optimiser (:func:`mapper.joint.optimise`:
the exact ILP for small graphs, else candidate orders, banded ILP rounds and the local search of
:mod:`mapper.order_search` (hoists, sinks and windows ranked by the ILP), warm-started from the
baselines), a lower bound on every order and allocation (:func:`mapper.joint.lower_bound`: the
forced-live and live-cut bounds and the capacity-only joint ILP's dual bound, not timed), the share
of the best baseline's traffic that bound leaves removable (``most%``: what no schedule and allocation
can beat, so a mean of them caps COSMA's metric on these models), its time and status, and COSMA's
metric: the share
of the best baseline's non-compulsory traffic removed, averaged over the models where the best
baseline has any (``-`` where it has none, or where every baseline fails: then the joint plan is the
only one).
``--weights`` adds the weights as tensors (activations plus weights); default: activations only.
Every result is checked with :func:`mapper.joint.check_joint`.

Run: ``.venv/bin/python benchmarks/cosma.py [--weights] [--models a,b] [--time-limit S]``; results in
``benchmarks/results/cosma[_weights].json`` (with ``--models``, the names are appended).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from accel.config import load as load_arch
from mapper import order as orders
from mapper.arena import POLICIES, tflite_arena
from mapper.joint import (
    JointProblem,
    Semantics,
    check_joint,
    fold_into_producers,
    joint_problem,
    lower_bound,
    min_peak,
    optimise,
)
from workloads import zoo
from workloads.graph import Graph, OpKind

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"

#: COSMA's models where the zoo builds them, then NAS-style cell networks (120 s allowed, as COSMA's).
MODELS = ("resnet50", "densenet121", "resnext50", "fcn_resnet50", "transformer_base", "vit_b16", "darts_v2",
          "nasnet_a", "amoebanet_a")
NAS = {"darts_v2", "nasnet_a", "amoebanet_a"}


def fusable(graph: Graph) -> list[str]:
    """Batch norms and activations right after a convolution or linear layer, and activations right
    after such a batch norm: what an inference framework folds or fuses into the layer before."""
    out = []
    for layer in graph.layers:
        if layer.op in (OpKind.NORM, OpKind.ACTIVATION) and layer.attrs.get("kind", "batch") == "batch":
            src = graph.tensors[layer.inputs[0]].producer
            if src is not None and (graph.layer(src).gemm is not None or src in out):
                out.append(layer.name)
    return out


def operands_bytes(problem: JointProblem) -> int:
    """``M_R``: the largest sum of one layer's input and output sizes."""
    return max(sum(t.size_bytes for t in problem.tensors if t.producer == i or i in t.consumers)
               for i in range(len(problem.layers)))


def _with_capacity(problem: JointProblem, capacity: int) -> JointProblem:
    import dataclasses
    return dataclasses.replace(problem, capacity_bytes=capacity)


def run_model(name: str, graph: Graph, arch: object, *, weights: bool, time_limit: float) -> list[dict]:
    began = time.perf_counter()
    base = joint_problem(graph, arch, capacity_bytes=1 << 50, semantics=Semantics.RESIDENT,  # type: ignore[arg-type]
                         weights=weights)
    base = fold_into_producers(base, fusable(graph))
    m_r = operands_bytes(base)
    default = base.layers
    kept = set(base.layers)
    min_live = tuple(n for n in orders.min_live_order(graph) if n in kept)
    peak_order, m_p, peak_bound = min_peak(base, reference=min_live, band=None if len(base.layers) <= 60 else 4,
                                           time_limit_s=min(30.0, time_limit), warm=[default, min_live])
    peak_s = time.perf_counter() - began
    budgets = {"M_R": m_r, "M_H": (m_r + m_p) // 2, "M_P": m_p}
    rows = []
    candidates = [default, peak_order, min_live, tuple(n for n in orders.depth_first_order(graph) if n in kept)]
    for label, budget in budgets.items():
        problem = _with_capacity(base, budget)
        baselines = {}
        for order_name, order in (("default", default), ("min-peak", peak_order)):
            for policy in POLICIES:
                baselines[f"{policy}/{order_name}"] = tflite_arena(problem, order, policy)
        for result in baselines.values():
            if result is not None:
                check_joint(problem, result)
        t0 = time.perf_counter()
        ours = optimise(problem, candidates=candidates, time_limit_s=time_limit, band=3, slots=2,
                        warm=[r for r in baselines.values() if r is not None])
        elapsed = time.perf_counter() - t0
        check_joint(problem, ours)
        floor = max(ours.bound, lower_bound(problem, time_limit_s=min(20.0, time_limit))) \
            if ours.non_compulsory_bytes else 0.0
        status = "optimal" if ours.non_compulsory_bytes <= floor + 0.5 else ours.status  # the bound proves it
        done = [r.non_compulsory_bytes for r in baselines.values() if r is not None]
        best = min(done) if done else None
        removed = None if not best else 100.0 * (best - ours.non_compulsory_bytes) / best
        ceiling = None if not best else 100.0 * (best - floor) / best  # the most any order and allocation removes
        row = {"model": name, "weights": weights, "budget": label, "budget_bytes": budget, "layers": len(base.layers),
               "tensors": len(base.tensors), "M_R": m_r, "M_P": m_p, "M_P_bound": peak_bound,
               "compulsory_bytes": problem.compulsory_dram_bytes,
               **{f"{k}_bytes": (None if r is None else r.non_compulsory_bytes) for k, r in baselines.items()},
               "best_baseline_bytes": best, "ours_bytes": ours.non_compulsory_bytes, "removed_pct": removed,
               "ceiling_pct": ceiling,
               "ours_status": status, "ours_bound": ours.bound, "lower_bound_bytes": floor,
               "ours_s": elapsed, "min_peak_s": peak_s,
               "never_worse": all(ours.non_compulsory_bytes <= v for v in done)}
        rows.append(row)
        cells = " ".join(f"{'fail' if r is None else f'{r.non_compulsory_bytes:,}':>13}" for r in baselines.values())
        print(f"{name:<17} {label:<4} {budget:>11,} {cells} {ours.non_compulsory_bytes:>13,} "
              f"{'-' if removed is None else f'{removed:.1f}':>7} {floor:>13,.0f} "
              f"{'-' if ceiling is None else f'{ceiling:.1f}':>6} {elapsed:>6.1f} {status}",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="store_true", help="activations plus weights (default: activations)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds per budget for the joint optimiser (default 8, NAS networks 80)")
    parser.add_argument("--arch", default="gemmini")
    args = parser.parse_args()
    arch = load_arch(args.arch)
    head = (f"{'model':<17} {'M':<4} {'budget B':>11} " + " ".join(f"{k:>13}" for k in
            (f"{p}/{o}"[:13] for o in ("default", "min-peak") for p in POLICIES)) +
            f" {'joint':>13} {'-best%':>7} {'bound':>13} {'most%':>6} {'time_s':>6} status")
    print(f"COSMA's setting ({'activations + weights' if args.weights else 'activations only'}, int8, resident "
          f"semantics); non-compulsory DRAM bytes")
    print(head)
    print("-" * len(head))
    rows = []
    for name in args.models.split(","):
        # COSMA's allowance per model (10 s, NAS-cell networks 120 s), less a margin: HiGHS can overrun
        # its time limit a little, and the wall time is what counts
        limit = args.time_limit or (80.0 if name in NAS else 8.0)
        rows += run_model(name, zoo.build(name), arch, weights=args.weights, time_limit=limit)
    summary = {}
    for label in ("M_R", "M_H", "M_P"):
        values = [r["removed_pct"] for r in rows if r["budget"] == label and r["removed_pct"] is not None]
        summary[f"mean_removed_pct_{label}"] = statistics.fmean(values) if values else None
        # the same mean with each model at its lower bound: what no schedule and allocation can beat
        most = [r["ceiling_pct"] for r in rows if r["budget"] == label and r["ceiling_pct"] is not None]
        summary[f"mean_ceiling_pct_{label}"] = statistics.fmean(most) if most else None
    summary["never_worse"] = all(r["never_worse"] for r in rows)
    summary["max_time_s"] = max(r["ours_s"] for r in rows)
    print()
    for k, v in summary.items():
        print(f"{k:<24} {v:.1f}" if isinstance(v, float) else f"{k:<24} {v}")
    OUT.mkdir(parents=True, exist_ok=True)
    custom = "" if args.models == ",".join(MODELS) else "_" + "_".join(args.models.split(","))
    out = OUT / f"cosma{'_weights' if args.weights else ''}{custom}.json"
    out.write_text(json.dumps({"arch": arch.name, "summary": summary, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
