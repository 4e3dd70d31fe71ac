#!/usr/bin/env python3
"""Regenerate the SCALE-Sim v3 reference fixtures in ``tests/fixtures/scalesim/``.

This is a stand-alone script (not imported by the ``accel`` package).  SCALE-Sim
needs ``numpy<2`` so it lives in its own virtualenv, e.g.::

    python3 -m venv /work/scalesim-venv
    /work/scalesim-venv/bin/pip install scalesim "numpy<2"

Usage (from the repo root, with any Python >= 3.9)::

    python benchmarks/scalesim_reference.py                   # all default runs
    python benchmarks/scalesim_reference.py --only alexnet    # a subset
    SCALESIM_PYTHON=/path/to/python python benchmarks/scalesim_reference.py

For every (topology, dataflow, array) run it

* writes a config ``tests/fixtures/scalesim/scale_<R>x<C>_<df>.cfg`` (a copy of
  SCALE-Sim's own ``configs/scale.cfg`` with only ArrayHeight/ArrayWidth,
  Dataflow and run_name changed; SRAM 64/64/64 KiB, Bandwidth 10,
  InterfaceBandwidth CALC),
* runs SCALE-Sim in a child process of the SCALE-Sim Python, one process at a
  time, in a temporary directory, and
* copies the COMPUTE_REPORT.csv that SCALE-Sim wrote to
  ``tests/fixtures/scalesim/<topology>_<df>_<R>x<C>.csv`` unchanged.

The child drives SCALE-Sim through its Python API
(``scalesim.scale_sim.scalesim(...).run_scale(top_path)``), which is what
``python -m scalesim.scale -c CFG -t TOPO -p OUTDIR [-i gemm]`` does, with two
differences that do not change any reported number:

* ``save_disk_space=True`` (no SRAM/DRAM trace CSVs are written; the CLI always
  writes them, its ``-s N`` flag is parsed but ignored in v3.0.0), and
* each layer's report items are computed right after that layer runs and the
  layer's operand/demand/trace matrices are then released (stock SCALE-Sim keeps
  every layer's matrices alive until the end of the run, which is where the
  >10 GB memory use comes from).  The report itself is still written by
  SCALE-Sim's own ``simulator.generate_reports()``.

The CLI also needs a layout file (``-l``, default ``./layouts/conv_nets/test.csv``
relative to the cwd) even when custom layouts are off; the child passes a
header-only dummy layout file.

Per-layer wall time and peak RSS (VmHWM, reset before each layer) are printed
and kept in ``tests/fixtures/scalesim/timings.csv`` (rows of a fixture are
replaced when it is regenerated); a summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "scalesim"
DATA = Path(os.environ.get("SCALESIM_DATA", "/work/shared/data/scalesim"))
DEFAULT_PYTHON = os.environ.get("SCALESIM_PYTHON", "/work/scalesim-venv/bin/python")

# topology name -> (file in DATA, is GEMM format, max layers or None)
TOPOLOGIES = {
    "alexnet": ("alexnet.csv", False, None),
    "vit_s": ("vit_s.csv", True, None),
    "resnet18": ("Resnet18.csv", False, None),
    "mobilenet": ("mobilenet.csv", False, None),
    # Linear1.. of gpt2 are far too large for the trace-based simulator
    # (tens of millions of cycles x array width in numpy matrices):
    # keep the two attention GEMMs only.
    "gpt2": ("gpt2.csv", True, 2),
}

# (topology, array rows, array cols); every entry is run for ws, os, is.
DEFAULT_RUNS = [
    ("alexnet", 32, 32),
    ("vit_s", 32, 32),
    ("gpt2", 32, 32),
    # a non-square array, so that R and C cannot be confused in a formula
    ("gpt2", 16, 32),
    ("gpt2", 32, 16),
    ("resnet18", 32, 32),
    ("mobilenet", 32, 32),
]
DATAFLOWS = ("ws", "os", "is")

# SCALE-Sim v3 configs/scale.cfg, with {rows}/{cols}/{df} substituted.
CFG_TEMPLATE = """\
[general]
run_name = scale_{rows}x{cols}_{df}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def write_cfg(rows: int, cols: int, df: str, dest_dir: Path) -> Path:
    path = dest_dir / f"scale_{rows}x{cols}_{df}.cfg"
    path.write_text(CFG_TEMPLATE.format(rows=rows, cols=cols, df=df))
    return path


# --------------------------------------------------------------------------
# child: runs inside the SCALE-Sim virtualenv
# --------------------------------------------------------------------------
def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker(cfg: str, topo: str, gemm: bool, out: str, partial: str | None = None) -> None:
    from scalesim import single_layer_sim as sls
    from scalesim.scale_sim import scalesim

    timings = []
    orig_run = sls.single_layer_sim.run

    def timed_run(self):
        _reset_hwm()
        t0 = time.perf_counter()
        orig_run(self)
        self.calc_report_data()           # report items are now cached
        dt = time.perf_counter() - t0
        hwm = _vm_hwm_kib()
        # free the big matrices (they are not needed for the reports any more)
        self.memory_system = None
        self.compute_system = None
        self.op_mat_obj = None
        items = self.get_compute_report_items()
        timings.append({"layer": self.layer_id, "wall_s": round(dt, 3),
                        "peak_rss_mib": round(hwm / 1024, 1)})
        print(f"  layer {self.layer_id:3d}: {dt:8.2f} s  peak RSS {hwm/1024:8.1f} MiB  "
              f"total={items[1]} stall={items[2]}", flush=True)
        if partial:
            # the same line simulator.generate_reports() will write for this layer, so
            # that an interrupted run still leaves the layers that finished
            new = not os.path.exists(partial)
            with open(partial, "a") as f:
                if new:
                    f.write("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                            "Overall Util %, Mapping Efficiency %, Compute Util %,\n")
                f.write(str(self.layer_id) + ", " + ", ".join(str(x) for x in items) + ",\n")

    sls.single_layer_sim.run = timed_run

    layout = os.path.join(out, "dummy_layout.csv")
    with open(layout, "w") as f:
        f.write("Layer name, IFMAP Height Intraline Factor, ...\n")

    t0 = time.perf_counter()
    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                 layout=layout, input_type_gemm=gemm)
    s.run_scale(top_path=out)
    total = time.perf_counter() - t0
    with open(os.path.join(out, "timings.json"), "w") as f:
        json.dump({"layers": timings, "total_wall_s": round(total, 2),
                   "peak_rss_mib": max([t["peak_rss_mib"] for t in timings]
                                       + [round(_vm_hwm_kib() / 1024, 1)])}, f, indent=1)


# --------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------
def run_one(python: str, topo_name: str, rows: int, cols: int, df: str,
            cfg_dir: Path, fixtures: Path) -> dict:
    fname, gemm, max_layers = TOPOLOGIES[topo_name]
    cfg = write_cfg(rows, cols, df, cfg_dir)
    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        topo = Path(tmp) / fname
        lines = (DATA / fname).read_text().splitlines()
        if max_layers is not None:
            lines = lines[: 1 + max_layers]
        topo.write_text("\n".join(lines) + "\n")
        out = Path(tmp) / "out"
        out.mkdir()
        dest = fixtures / f"{topo_name}_{df}_{rows}x{cols}.csv"
        # per-layer lines of an unfinished run (deleted when the run completes)
        partial = dest.with_suffix(".partial.csv")
        partial.unlink(missing_ok=True)
        cmd = [python, str(Path(__file__).resolve()), "--worker", "--cfg", str(cfg),
               "--topo", str(topo), "--out", str(out), "--partial", str(partial)] \
            + (["--gemm"] if gemm else [])
        print(f"== {topo_name} {df} {rows}x{cols}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        report = out / f"scale_{rows}x{cols}_{df}" / "COMPUTE_REPORT.csv"
        shutil.copyfile(report, dest)
        partial.unlink(missing_ok=True)
        info = json.loads((out / "timings.json").read_text())
    info.update(topology=topo_name, dataflow=df, rows=rows, cols=cols,
                fixture=dest.name, cfg=cfg.name, process_wall_s=round(wall, 2))
    return info


def update_timings_csv(path: Path, info: dict) -> None:
    """Replace the rows of ``info['fixture']`` in the per-layer timing CSV."""
    header = "fixture,layer_id,wall_s,peak_rss_mib\n"
    keep = []
    if path.exists():
        keep = [ln for ln in path.read_text().splitlines()[1:]
                if ln and ln.split(",")[0] != info["fixture"]]
    keep += [f"{info['fixture']},{t['layer']},{t['wall_s']},{t['peak_rss_mib']}"
             for t in info["layers"]]
    path.write_text(header + "\n".join(sorted(keep, key=lambda x: (x.split(",")[0],
                                                                     int(x.split(",")[1]))))
                    + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=DEFAULT_PYTHON,
                    help="Python with scalesim installed (env SCALESIM_PYTHON)")
    ap.add_argument("--only", nargs="*", help="topology names to run")
    ap.add_argument("--dataflows", nargs="*", default=list(DATAFLOWS))
    ap.add_argument("--array", help="override array size for all runs, e.g. 16x16")
    ap.add_argument("--fixtures", default=str(FIXTURES))
    ap.add_argument("--timings-json", help="append per-run timing records here")
    # child mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cfg"), ap.add_argument("--topo"), ap.add_argument("--out")
    ap.add_argument("--gemm", action="store_true")
    ap.add_argument("--partial")
    a = ap.parse_args(argv)

    if a.worker:
        worker(a.cfg, a.topo, a.gemm, a.out, a.partial)
        return 0

    fixtures = Path(a.fixtures)
    fixtures.mkdir(parents=True, exist_ok=True)
    runs = DEFAULT_RUNS
    if a.only:
        runs = [r for r in runs if r[0] in a.only]
    if a.array:
        r, c = (int(x) for x in a.array.lower().split("x"))
        runs = list(dict.fromkeys((t, r, c) for t, _, _ in runs))
    results = []
    for topo_name, rows, cols in runs:
        for df in a.dataflows:
            info = run_one(a.python, topo_name, rows, cols, df, fixtures, fixtures)
            results.append(info)
            update_timings_csv(fixtures / "timings.csv", info)
            if a.timings_json:
                with open(a.timings_json, "a") as f:
                    f.write(json.dumps(info) + "\n")

    print("\n| fixture | layers | total wall s | mean s/layer | max s/layer | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        w = [x["wall_s"] for x in r["layers"]]
        print(f"| {r['fixture']} | {len(w)} | {r['total_wall_s']} | {sum(w)/len(w):.2f} | "
              f"{max(w):.2f} | {r['peak_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
