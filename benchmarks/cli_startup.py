"""CLI start-up: wall time of ``accel --help``, ``accel --version``, ``accel info`` and each command's
``--help``, each in a fresh interpreter (the best of ``--repeat`` runs), and the heavy packages each
imports. The target (issue 18) is ``accel --help`` under 0.5 s; it took about 3 s when the CLI imported
onnx, ml_dtypes, pandas, matplotlib, amaranth and HiGHS at start.

Prints a table and writes JSON (``--json``, default ``benchmarks/results/cli_startup.json``).

    python benchmarks/cli_startup.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "onnx", "ml_dtypes", "pandas", "matplotlib", "amaranth", "highspy", "simpy", "scipy")
CASES = (["--help"], ["--version"], ["info"], ["info", "--help"], ["workload", "--help"], ["run", "--help"],
         ["map", "--help"], ["sweep", "--help"], ["report", "--help"], ["rtl", "generate", "--help"],
         ["fpga", "synth", "--help"])

_PROBE = """\
import contextlib, io, sys, time
start = time.perf_counter()
from accel.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(time.perf_counter() - start)
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))))
""".replace("HEAVY", repr(HEAVY))


def measure(argv: list[str], repeat: int) -> dict[str, object]:
    """Best wall time of ``accel argv`` over ``repeat`` fresh interpreters, and what it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    walls, inner, heavy = [], [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env,
                              cwd=ROOT, check=True)
        walls.append(time.perf_counter() - start)
        lines = proc.stdout.splitlines()
        inner.append(float(lines[-2]))
        heavy = lines[-1]
    return {"command": " ".join(["accel", *argv]), "wall_s": min(walls), "in_process_s": min(inner),
            "heavy_imports": heavy.split(",") if heavy else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the best counts; default 5)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "cli_startup.json")
    args = parser.parse_args()
    rows = [measure(argv, args.repeat) for argv in CASES]
    width = max(len(r["command"]) for r in rows)
    print(f"{'command':{width}s}  wall (s)  in process (s)  heavy imports")
    for r in rows:
        print(f"{r['command']:{width}s}  {r['wall_s']:8.3f}  {r['in_process_s']:14.3f}  "
              f"{', '.join(r['heavy_imports']) or '-'}")
    help_s = rows[0]["wall_s"]
    print(f"\naccel --help: {help_s:.3f} s (target < 0.5 s: {'met' if help_s < 0.5 else 'NOT met'})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                                     "cpus": os.cpu_count(), "repeat": args.repeat, "target_help_s": 0.5,
                                     "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
