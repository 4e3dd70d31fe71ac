"""Plan-checking speed: CPU seconds and commands per second of ``mapper.check.check_plan``.

Runs each row in a fresh process on one core: maps the model (``mapper.map_graph``, which checks the
plan once itself; that time is reported, not counted), then times ``check_plan(plan)`` ``--repeat``
times on the same plan and reports the best and the median CPU seconds and commands checked per CPU
second at the best. With ``--against REV`` it also times the ``mapper/check.py`` of git revision REV
(loaded from ``git show``, run on the same plan in the same process) and prints the speed-up, after
checking both accept the plan.

Rows: GPT-2 prefill and ResNet-50 on the Gemmini-like preset, the whole 32-layer Llama-2-7B prefill on
the TPU-like preset (the plans ``map_graph`` makes by default: no allocator). Target printed beside
the figures (not asserted): GPT-2 prefill checked in under 0.4 s. The machine is shared: the load
average is printed, and ratios between rows of one run are what to read.

    python benchmarks/check_speed.py
    python benchmarks/check_speed.py --against main --repeat 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = (("gpt2_prefill", "gemmini"), ("resnet50", "gemmini"), ("llama2_7b_prefill", "tpu-v1"))
TARGETS_S = {("gpt2_prefill", "gemmini"): 0.4}


def _cpu_seconds(check: Callable[[object], None], plan: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        check(plan)
        times.append(time.process_time() - c0)
    return times


def _check_at(rev: str) -> Callable[[object], None]:
    """``check_plan`` of ``mapper/check.py`` at git revision ``rev``, loaded as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:mapper/check.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"check_at_{abs(hash(rev))}", f.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(f.name)
    return module.check_plan


def measure(model: str, preset: str, repeat: int, against: str | None) -> dict[str, object]:
    """One row, in this process (imports first, so they are not timed)."""
    import mapper
    import mapper.pipeline  # noqa: F401 - map_graph imports its rooms on first use
    from accel import config
    from mapper.check import check_plan
    from workloads import zoo

    graph = zoo.build(model)
    arch = config.load(preset)
    c0 = time.process_time()
    plan = mapper.map_graph(graph, arch)
    map_cpu_s = time.process_time() - c0
    commands = len(plan.commands)
    times = _cpu_seconds(check_plan, plan, repeat)
    row: dict[str, object] = {
        "model": model, "preset": preset, "commands": commands, "map_cpu_s": map_cpu_s,
        "check_cpu_s": min(times), "check_cpu_s_median": statistics.median(times), "check_cpu_s_all": times,
        "commands_per_s": commands / min(times),
    }
    if against is not None:
        old = _check_at(against)
        old_times = _cpu_seconds(old, plan, repeat)
        row.update({"against": against, "against_check_cpu_s": min(old_times), "against_check_cpu_s_all": old_times,
                    "speedup": min(old_times) / min(times)})
    return row


def measure_in_subprocess(model: str, preset: str, repeat: int, against: str | None) -> dict[str, object]:
    command = [sys.executable, __file__, "--one", model, preset, "--repeat", str(repeat)]
    command += [] if against is None else ["--against", against]
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])  # this checkout first
    done = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "check_speed.json")
    parser.add_argument("--repeat", type=int, default=3, help="times check_plan runs on each plan (best is reported)")
    parser.add_argument("--against", metavar="REV", help="also time mapper/check.py of this git revision")
    parser.add_argument("--only", help="comma-separated model names: run only these rows")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be a positive number of runs, not {args.repeat}")
    if args.one:
        print(json.dumps(measure(*args.one, repeat=args.repeat, against=args.against)))
        return

    load_before = os.getloadavg()
    wanted = set(args.only.split(",")) if args.only else None
    rows = [measure_in_subprocess(m, p, args.repeat, args.against) for m, p in ROWS if wanted is None or m in wanted]
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    against = f"{args.against + ' s':>10s} {'speed-up':>8s} " if args.against else ""
    print(f"{'model':20s} {'preset':7s} {'commands':>9s} {'map cpu s':>9s} {'check s':>8s} {'median s':>8s} "
          f"{'cmds/s':>9s} {against}target")
    for r in rows:
        target = TARGETS_S.get((r["model"], r["preset"]))
        verdict = "" if target is None else f"< {target:g} s: {'met' if r['check_cpu_s'] < target else 'not met'}"
        old = f"{r['against_check_cpu_s']:10.3f} {r['speedup']:7.2f}x " if args.against else ""
        print(f"{r['model']:20s} {r['preset']:7s} {r['commands']:9d} {r['map_cpu_s']:9.2f} {r['check_cpu_s']:8.3f} "
              f"{r['check_cpu_s_median']:8.3f} {r['commands_per_s']:9.3g} {old}{verdict}")
    out: dict[str, object] = {"runs": rows, "load_average": [load_before[0], os.getloadavg()[0]],
                              "python": sys.version.split()[0],
                              "targets_s": {f"{m}@{p}": t for (m, p), t in TARGETS_S.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
