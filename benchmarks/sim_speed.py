"""Simulator speed: mapping, simulation and summary time, commands, SimPy events and cycles per second.

Runs each row in a fresh process on one core (so peak RSS is the row's own and no cache is warm):
maps the model (``mapper.map_graph``), simulates it (``sim.simulate``, coalescing on) and summarises it
(``summary()``, ``layers()``, ``units()`` and the energy report), and reports the wall and CPU seconds
of each phase (the map's CPU seconds also split into its decisions, emission and proof), commands,
SimPy events, commands coalesced, commands/s and events/s of the simulation, simulated cycles per
second of the whole pipeline, and peak RSS. With ``--fine`` (default for rows of at most 300,000
commands) it also times ``simulate(plan, fine=True)`` and checks it gives the same total.

Rows: the CNNs and BERT on the Gemmini-like and TPU-like presets, GPT-2 prefill and the Llama-2-7B /
Llama-3-8B decoder layers on Gemmini, the whole 32-layer Llama-2-7B (prefill of 2,048 tokens and one
decode step) on the TPU-like preset (on a 16x16 Gemmini it is ~15 million commands of the mapper's,
beyond what one process holds). Targets printed beside the figures (not asserted): GPT-2 prefill
mapped + simulated + summarised under 5 s, Llama-2-7B prefill under 60 s, ResNet-50 under 0.3 s, each
in CPU seconds (the ``cpu s`` column; wall time on a shared machine counts the other jobs too). The
machine is shared: the load average is printed, and ratios between rows of one run are what to read.

With ``--scalesim-python PATH`` (a Python that has ``scalesim`` installed, numpy < 2) it also times
SCALE-Sim v3 on the first ``--scalesim-layers`` layers of its own ResNet-18 topology in the same run,
and reports the ratio of simulated cycles per second on the same rows.

    python benchmarks/sim_speed.py
    python benchmarks/sim_speed.py --scalesim-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scalesim"
ROWS = (
    ("resnet18", "gemmini"), ("resnet50", "gemmini"), ("mobilenet_v2", "gemmini"), ("bert_base_layer", "gemmini"),
    ("resnet18", "tpu-v1"), ("resnet50", "tpu-v1"), ("mobilenet_v2", "tpu-v1"), ("bert_base_layer", "tpu-v1"),
    ("gpt2_prefill", "gemmini"), ("gpt2_decode", "gemmini"),
    ("llama2_7b_layer_prefill", "gemmini"), ("llama2_7b_layer_decode", "gemmini"),
    ("llama3_8b_layer_prefill", "gemmini"), ("llama3_8b_layer_decode", "gemmini"),
    ("llama2_7b_prefill", "tpu-v1"), ("llama2_7b_decode", "tpu-v1"),
)
TARGETS_S = {("gpt2_prefill", "gemmini"): 5.0, ("llama2_7b_prefill", "tpu-v1"): 60.0, ("resnet50", "gemmini"): 0.3}
FINE_UP_TO = 300_000  # commands: rows up to this size also time the fine simulation


def measure(model: str, preset: str, fine: bool) -> dict[str, object]:
    """One row, in this process (imports first, so they are not timed)."""
    import pandas as pd

    import mapper
    import mapper.pipeline  # noqa: F401 - map_graph imports its rooms on first use
    import sim
    import sim.engine  # noqa: F401
    from accel import config
    from workloads import zoo

    # pandas imports its pyarrow string support (pyarrow.pandas_compat and pyarrow's version parser,
    # a few ms of regex compiles) on the first frame with a text column: import work, done here
    pd.DataFrame({"layer": [""]})
    arch = config.load(preset)
    graph = zoo.build(model)
    clock = time.perf_counter
    cpu = time.process_time
    phases = _time_map_phases()
    t0, c0 = clock(), cpu()
    plan = mapper.map_graph(graph, arch)
    t1, c1 = clock(), cpu()
    result = sim.simulate(plan)
    t2, c2 = clock(), cpu()
    result.summary()
    result.layers()
    result.units()
    t3, c3 = clock(), cpu()
    row: dict[str, object] = {
        "model": model, "preset": preset, "commands": len(plan.commands), "events": result.events,
        "coalesced": result.coalesced_commands, "total_cycles": result.total_cycles,
        "map_s": t1 - t0, "simulate_s": t2 - t1, "summary_s": t3 - t2, "wall_s": t3 - t0,
        "decide_cpu_s": phases["decide"], "emit_cpu_s": phases["emit"], "check_cpu_s": phases["check"],
        "map_cpu_s": c1 - c0, "simulate_cpu_s": c2 - c1, "summary_cpu_s": c3 - c2, "cpu_s": c3 - c0,
        "commands_per_s": len(plan.commands) / (t2 - t1), "events_per_s": result.events / (t2 - t1),
        "cycles_per_s": result.total_cycles / (t3 - t0),
    }
    if fine and len(plan.commands) <= FINE_UP_TO:
        t4 = clock()
        reference = sim.simulate(plan, fine=True)
        row["fine_simulate_s"] = clock() - t4
        row["fine_events"] = reference.events
        row["fine_same_total"] = reference.total_cycles == result.total_cycles
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _time_map_phases() -> dict[str, float]:
    """CPU seconds the map spends in its phases, filled in as it runs: the layers' decisions (the
    mapping searches; ``mapper.decide.decide_layers`` as the pipeline calls it), emission
    (``mapper.emit.emit_program``, or ``emit_resumable`` for a program without residents) and the
    proof (``mapper.check.check_plan``), by wrapping the names ``mapper.pipeline`` and
    ``mapper.programs`` call them by."""
    import mapper.pipeline
    import mapper.programs

    spent = {"decide": 0.0, "emit": 0.0, "check": 0.0}

    def timed(module, name: str, phase: str) -> None:  # noqa: ANN001
        inner = getattr(module, name)

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[phase] += time.process_time() - start

        setattr(module, name, wrapper)

    timed(mapper.pipeline, "decide_layers", "decide")
    timed(mapper.programs, "emit_program", "emit")
    timed(mapper.programs, "emit_resumable", "emit")
    timed(mapper.programs, "check_plan", "check")
    return spent


def measure_in_subprocess(model: str, preset: str, fine: bool) -> dict[str, object]:
    command = [sys.executable, __file__, "--one", model, preset] + ([] if fine else ["--no-fine"])
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    from mapper import Depthwise, LoopOrder, MapOptions, map_graph
    from sim import simulate
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
    parser.add_argument("--no-fine", action="store_true", help="do not time the fine (one by one) simulation")
    parser.add_argument("--only", help="comma-separated model names: run only these rows")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, fine=not args.no_fine)))
        return

    load_before = os.getloadavg()
    wanted = set(args.only.split(",")) if args.only else None
    rows = [measure_in_subprocess(m, p, not args.no_fine) for m, p in ROWS if wanted is None or m in wanted]
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(f"{'model':24s} {'preset':7s} {'commands':>9s} {'events':>8s} {'coalesced':>9s} {'map s':>7s} "
          f"{'decide':>7s} {'emit':>7s} {'check':>7s} {'sim s':>7s} {'summ s':>7s} {'total s':>8s} {'cpu s':>7s} "
          f"{'cmds/s':>9s} {'events/s':>9s} "
          f"{'cycles/s':>9s} {'fine sim s':>10s} {'RSS MB':>7s} target")
    for r in rows:
        target = TARGETS_S.get((r["model"], r["preset"]))
        verdict = "" if target is None else f"< {target:g} CPU s: {'met' if r['cpu_s'] < target else 'not met'}"
        fine_s = f"{r['fine_simulate_s']:10.2f}" if "fine_simulate_s" in r else f"{'':>10s}"
        print(f"{r['model']:24s} {r['preset']:7s} {r['commands']:9d} {r['events']:8d} {r['coalesced']:9d} "
              f"{r['map_s']:7.2f} {r['decide_cpu_s']:7.2f} {r['emit_cpu_s']:7.2f} {r['check_cpu_s']:7.2f} "
              f"{r['simulate_s']:7.2f} {r['summary_s']:7.2f} {r['wall_s']:8.2f} {r['cpu_s']:7.2f} "
              f"{r['commands_per_s']:9.3g} {r['events_per_s']:9.3g} {r['cycles_per_s']:9.3g} {fine_s} "
              f"{r['peak_rss_mb']:7.0f} {verdict}")
    out: dict[str, object] = {"runs": rows, "load_average": [load_before[0], os.getloadavg()[0]],
                              "python": sys.version.split()[0], "targets_s": {f"{m}@{p}": t for (m, p), t in
                                                                              TARGETS_S.items()}}
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
