"""The ``accel sweep`` command: run a design-space sweep from a spec file and write its results table.

Registered by :mod:`accel.cli` through :func:`register`. Spec problems raise
:class:`~accel.errors.ConfigError` naming the file and key (the CLI prints one line and exits 2).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

_DESCRIPTION = """\
Map and simulate every point of a design space on every workload, and write one row per
(point, workload) to OUT (Parquet when pyarrow is installed, else CSV; the suffix decides).
Without SPEC it runs the built-in sweep (sim/sweeps/default.toml): array size 8/16/32 square x
dataflow ws/os x scratchpad 128/512 KiB x dense/2:4 weights, on resnet18, mobilenet_v2 and
bert_base_layer, around the sparse-nm preset.

A spec is a TOML file:

  [sweep]
  base = "gemmini"                        # preset name or TOML path (relative to the spec)
  workloads = ["resnet18", "bert_base_layer"]   # zoo names or .onnx/.csv paths
  objectives = ["latency_s", "energy_j"]  # optional: metric columns a report trades off
  sample = "product"                      # or "random" / "lhs", with samples = N and seed = S
  fpga_family = "ecp5"                    # family of the LUT/DSP/Fmax estimate (or "ice40")
  fpga_device = "45k"                     # optional constraint: points whose tile does not fit are invalid

  [params]                                # each key is one axis; the space is their product
  "array.size" = [8, 16, 32]              # tied parameter: rows = cols
  "array.dataflows" = [["ws"], ["os"]]
  "scratchpad.size_bytes" = ["128 KiB", "512 KiB"]
  "dram.bandwidth_bytes_per_cycle" = [8.0, 16.0]
  "mapper.allocator" = ["none", "greedy"] # any field of mapper.MapOptions
  "workload.nm" = ["dense", "2:4"]        # weights N:M sparse (workloads.sparsify)
  "workload.batch" = [1, 8]               # batch size (as accel run --batch)

  [[zip]]                                 # optional: keys that move together (one axis)
  "array.rows" = [8, 16]
  "array.cols" = [32, 16]

Keys are dotted paths into the hardware TOML (accel info PRESET --toml), plus clock_hz,
array.size, mapper.*, workload.nm, workload.batch and workload.dim.NAME (an ONNX model's symbolic
input dimension, as accel run --dim NAME=SIZE). Points that make an invalid design are kept with status
"invalid" and the reason. Finished rows are journaled to OUT.partial.jsonl as they come: after an
interruption, run the same command with --resume to compute only what is missing.
"""


def register(subparsers: Any) -> None:
    """Add the ``sweep`` command to ``subparsers``."""
    sweep = subparsers.add_parser("sweep", help="run a design-space sweep into a results table",
                                  description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("spec", nargs="?", type=Path, help="sweep spec TOML (default: the built-in sweep)")
    sweep.add_argument("--out", type=Path, default=None,
                       help="results file, .parquet or .csv (default: sweep.parquet, or sweep.csv without pyarrow)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue the sweep in OUT: reuse its finished rows, compute the rest")
    sweep.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: all cores; 1 runs in this process)")
    sweep.add_argument("--dask", metavar="ADDR", help="run on a Dask scheduler, e.g. tcp://host:8786")
    sweep.add_argument("--sample", choices=("product", "random", "lhs"),
                       help="enumerate the product, or draw --samples points at random or by Latin hypercube")
    sweep.add_argument("--samples", type=int, metavar="N", help="points to draw with --sample random/lhs")
    sweep.add_argument("--seed", type=int, metavar="S", help="seed of the sample (default: the spec's, 0)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_sweep, own_progress=True)


def _default_out() -> Path:
    from sim.sweep.results import default_suffix

    return Path("sweep" + default_suffix())


def _sweep(args: argparse.Namespace) -> int:
    from accel.errors import ConfigError
    from sim.sweep import SweepInterrupted, default_spec_path, load_spec, run_sweep

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, not {args.workers}")
    if args.samples is not None and args.sample not in ("random", "lhs"):
        raise ConfigError("--samples N needs --sample random or --sample lhs (a product enumerates every point)")
    spec = load_spec(args.spec or default_spec_path(), sample=args.sample, samples=args.samples, seed=args.seed)
    out = args.out or _default_out()
    bar = None
    counts: dict[str, int] = {}

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if "reused" not in counts:
            counts["reused"] = done
            counts["total"] = total
            if done == total:
                return
            if not args.no_progress:
                from tqdm import tqdm

                bar = tqdm(total=total, initial=done, unit="row", desc="sweep", file=sys.stderr)
        elif bar is not None:
            bar.update(done - bar.n)
        counts["done"] = done

    try:
        frame = run_sweep(spec.space, spec.workloads, objectives=spec.objectives, executor=args.dask,
                      max_workers=args.workers, out=out, resume=args.resume, progress=progress)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (SweepInterrupted says which)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # exiting: a second Ctrl-C must not break the clean exit
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if bar is not None:
            bar.close()
        signum = exc.signum if isinstance(exc, SweepInterrupted) else 2
        print(f"accel: interrupted; finished rows are kept, run again with --resume to continue {out}",
              file=sys.stderr)
        return 128 + signum
    finally:
        if bar is not None:
            bar.close()
    total, reused = counts["total"], counts["reused"]
    if reused == total:
        print(f"all {total} rows ({frame['point'].nunique()} points x {len(spec.workloads)} workloads) are "
              f"already done in {out}; nothing to compute")
        return 0
    statuses = frame["status"].value_counts()
    print(f"computed {total - reused} of {total} rows ({reused} reused); "
          + ", ".join(f"{n} {s}" for s, n in statuses.items()) + f"; wrote {out}")
    return 0
