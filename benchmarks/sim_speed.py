"""Simulator speed: wall time and simulated events per second for zoo models on two presets.

Maps and simulates ResNet-18, ResNet-50, MobileNetV2 and the BERT-base layer on the TPU-like and the
Gemmini-like presets, one after another on one core, and reports for each: wall time of mapping and of
simulation, commands (= simulated events), events per second, simulated cycles per wall-clock second,
and peak memory (RSS) of the process. Prints a table and writes JSON (``--json``, default
``benchmarks/results/sim_speed.json``).

With ``--scalesim-python PATH`` (a Python that has ``scalesim`` installed, numpy < 2) it also times
SCALE-Sim v3 on the first ``--scalesim-layers`` layers of its own ResNet-18 topology in the same run,
and reports the ratio of simulated cycles per second.

    python benchmarks/sim_speed.py
    python benchmarks/sim_speed.py --scalesim-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from accel import config
from mapper import MapOptions, map_graph
from sim import simulate
from workloads import zoo

MODELS = ("resnet18", "resnet50", "mobilenet_v2", "bert_base_layer")
PRESETS = ("tpu-v1", "gemmini")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scalesim"


def measure(model: str, preset: str) -> dict[str, object]:
    arch = config.load(preset)
    graph = zoo.build(model)
    t0 = time.perf_counter()
    plan = map_graph(graph, arch)
    t1 = time.perf_counter()
    result = simulate(plan)
    t2 = time.perf_counter()
    return {
        "model": model, "preset": preset, "commands": len(plan.commands), "total_cycles": result.total_cycles,
        "map_s": t1 - t0, "simulate_s": t2 - t1, "wall_s": t2 - t0,
        "events_per_s": len(plan.commands) / (t2 - t1),
        "cycles_per_s": result.total_cycles / (t2 - t0),
    }


def scalesim_wall(python: str, layers: int) -> dict[str, object]:
    """Run SCALE-Sim v3 (its own API, as its CLI does) on the first ``layers`` rows of its ResNet-18
    topology on a 32x32 WS array, and time it; traces are not written (``save_disk_space``)."""
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "resnet18_head.csv"
        rows = (SHARED / "Resnet18.csv").read_text().splitlines()
        topo.write_text("\n".join(rows[: layers + 1]) + "\n")
        layout = Path(tmp) / "layout.csv"
        layout.write_text("Layer name, IFMAP Height Intraline Factor\n")
        cfg = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scalesim" / "scale_32x32_ws.cfg"
        script = (
            "import sys; from scalesim.scale_sim import scalesim\n"
            "s = scalesim(save_disk_space=True, verbose=False, config=sys.argv[1], topology=sys.argv[2],"
            " layout=sys.argv[3], input_type_gemm=False)\n"
            "s.run_scale(top_path=sys.argv[4])\n"
        )
        t0 = time.perf_counter()
        subprocess.run([python, "-c", script, str(cfg), str(topo), str(layout), tmp], check=True,
                       capture_output=True, cwd=tmp)
        wall = time.perf_counter() - t0
        report = next(Path(tmp).rglob("COMPUTE_REPORT.csv"))
        lines = [line.split(",") for line in report.read_text().splitlines()[1:] if line.strip()]
        cycles = sum(int(float(parts[2])) + 1 for parts in lines)
    return {"layers": layers, "wall_s": wall, "total_cycles": cycles, "cycles_per_s": cycles / wall}


def ours_on_scalesim(layers: int) -> dict[str, object]:
    """The same topology rows and config through this simulator (fold-outer, SCALE-Sim's order)."""
    from accel.scalesim import load_scalesim_config
    from mapper import Depthwise, LoopOrder
    from workloads.scalesim_import import load_scalesim_topology

    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "resnet18_head.csv"
        topo.write_text("\n".join((SHARED / "Resnet18.csv").read_text().splitlines()[: layers + 1]) + "\n")
        graph = load_scalesim_topology(topo)
    arch = load_scalesim_config(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scalesim"
                                / "scale_32x32_ws.cfg")
    t0 = time.perf_counter()
    result = simulate(map_graph(graph, arch, MapOptions(loop_order=LoopOrder.FOLD_OUTER, depthwise=Depthwise.ARRAY)))
    wall = time.perf_counter() - t0
    return {"layers": layers, "wall_s": wall, "total_cycles": result.total_cycles,
            "cycles_per_s": result.total_cycles / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "sim_speed.json")
    parser.add_argument("--scalesim-python", help="a Python with scalesim installed, to time SCALE-Sim too")
    parser.add_argument("--scalesim-layers", type=int, default=2)
    args = parser.parse_args()

    rows = [measure(m, p) for p in PRESETS for m in MODELS]
    print(f"{'model':16s} {'preset':8s} {'commands':>9s} {'map s':>7s} {'sim s':>7s} {'events/s':>10s} "
          f"{'cycles/s':>12s}")
    for r in rows:
        print(f"{r['model']:16s} {r['preset']:8s} {r['commands']:9d} {r['map_s']:7.3f} {r['simulate_s']:7.3f} "
              f"{r['events_per_s']:10.0f} {r['cycles_per_s']:12.3g}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    out: dict[str, object] = {"runs": rows, "peak_rss_mb": peak_mb, "python": sys.version.split()[0]}
    if args.scalesim_python:
        ref = scalesim_wall(args.scalesim_python, args.scalesim_layers)
        ours = ours_on_scalesim(args.scalesim_layers)
        out["scalesim"] = ref
        out["ours_on_scalesim_input"] = ours
        out["cycles_per_s_ratio_vs_scalesim"] = ours["cycles_per_s"] / ref["cycles_per_s"]
        print(f"SCALE-Sim v3: {ref['layers']} ResNet-18 layers (32x32 WS) in {ref['wall_s']:.1f} s, "
              f"{ref['cycles_per_s']:.3g} cycles/s; this simulator on the same input: {ours['wall_s']:.3f} s, "
              f"{ours['cycles_per_s']:.3g} cycles/s: {out['cycles_per_s_ratio_vs_scalesim']:.0f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
