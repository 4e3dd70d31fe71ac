"""Synthesis sweep of the systolic tile that :mod:`accel.resources` is fitted from.

Synthesizes (and places and routes where the tile fits a device) every design point of
:data:`accel.resources.FIT_POINTS` for each family and dataflow, and writes one CSV row per point
to ``accel/data/fpga_resources.csv`` (committed as data). Reports are cached
(:func:`rtl.fpga.synth.synthesize_unit`), so a rerun only builds new points. Prints the table and
the wall time; two worker processes by default::

    python benchmarks/fpga_sweep.py [--jobs 2] [--out accel/data/fpga_resources.csv] [--fmax-from OLD.csv]

``--fmax-from OLD.csv`` synthesizes every point but runs no place and route: each point's Fmax and
device are taken from that earlier CSV (use it only when the tile's RTL has not changed since, so
that nextpnr would place the same netlist; it saves the half hour nextpnr takes).
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from accel.resources import CSV_COLUMNS, FIT_POINTS, default_data_path

FAMILIES = ("ice40", "ecp5")
DATAFLOWS = ("ws", "os")
MAX_PLACED_PES = 8


def _one(job: tuple[str, str, int, int, bool]) -> dict[str, object] | str:
    from accel.errors import AccelError
    from rtl.fpga.synth import synthesize_unit

    family, dataflow, rows, cols, place = job
    # Place and route (for Fmax) only small tiles: nextpnr takes minutes on an 8x8 tile.
    try:
        report = synthesize_unit("systolic", family=family, place=place and rows * cols <= MAX_PLACED_PES,
                                 options={"rows": rows, "cols": cols, "dataflow": dataflow})
    except AccelError as exc:
        return f"{family} {dataflow} {rows}x{cols} failed: {str(exc).splitlines()[0]}"
    r = report.resources
    fmax = min(report.fmax_mhz.values()) if report.fmax_mhz else ""
    return {"family": family, "dataflow": dataflow, "rows": rows, "cols": cols, "a_format": "int8",
            "b_format": "int8", "acc_format": "int32", "luts": r.luts, "lut_primitives": r.lut_primitives,
            "flip_flops": r.flip_flops, "carry": r.carry, "dsp": r.dsp, "bram": r.bram,
            "fmax_mhz": f"{fmax:.2f}" if fmax != "" else "", "device": report.device if fmax != "" else "",
            "synth_command": report.synth_command}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=default_data_path())
    parser.add_argument("--fmax-from", type=Path, help="take Fmax and device from this CSV; no place and route")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    earlier: dict[tuple[str, str, str, str], dict[str, str]] = {}
    if args.fmax_from is not None:
        with args.fmax_from.open(newline="") as handle:
            earlier = {(r["family"], r["dataflow"], r["rows"], r["cols"]): r for r in csv.DictReader(handle)}
    jobs = [(f, d, r, c, args.fmax_from is None) for f in FAMILIES for d in DATAFLOWS for r, c in FIT_POINTS]
    start = time.monotonic()
    rows: list[dict[str, object]] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(_one, jobs):
            if isinstance(row, str):
                print(row, flush=True)
                continue
            if earlier:
                old = earlier.get((str(row["family"]), str(row["dataflow"]), str(row["rows"]), str(row["cols"])), {})
                row.update(fmax_mhz=old.get("fmax_mhz", ""), device=old.get("device", ""))
            rows.append(row)
            print(", ".join(f"{k}={row[k]}" for k in ("family", "dataflow", "rows", "cols", "luts", "flip_flops",
                                                      "dsp", "fmax_mhz")), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} design points in {time.monotonic() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
