"""The FPGA resource model against synthesis of the design points it was not fitted on.

For every held-out tile (:data:`accel.resources.HELD_OUT_POINTS`), family (iCE40, ECP5) and
dataflow the CSV covers, synthesizes the bare tile with :func:`rtl.fpga.synth.synthesize_unit`
(yosys; then nextpnr on the harnessed tile where it fits a device, for Fmax; reports are cached, so
a rerun builds nothing new), compares LUTs, flip-flops, carry, DSP, BRAM and Fmax with
:func:`accel.resources.estimate`, prints a markdown table and writes the same rows as JSON to
``benchmarks/results/fpga_model_check.json``. Error % is ``100 * (model - synthesis) / synthesis``
(blank where synthesis found none of that resource or no Fmax). Tools are found as
:func:`rtl.fpga.nextpnr.find_tool` finds them (the YoWASP commands next to this Python by default)::

    python benchmarks/fpga_model_check.py [--jobs 2] [--no-pnr] [--out benchmarks/results/fpga_model_check.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from accel.resources import HELD_OUT_POINTS, estimate, fitted_keys

FAMILIES = ("ice40", "ecp5")
RESOURCES = ("luts", "lut_primitives", "flip_flops", "carry", "dsp", "bram")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "fpga_model_check.json"


def _one(job: tuple[str, str, int, int, bool]) -> dict[str, object]:
    from rtl.fpga.synth import synthesize_unit

    family, dataflow, rows, cols, place = job
    start = time.monotonic()
    from accel.errors import ConfigError

    options = {"rows": rows, "cols": cols, "dataflow": dataflow}
    try:
        report = synthesize_unit("systolic", family=family, place=place, options=options)
    except ConfigError:  # fits no device of the family: its synthesis figures still count
        report = synthesize_unit("systolic", family=family, place=False, options=options)
    model = estimate(rows, cols, dataflow=dataflow, family=family)
    measured = {name: getattr(report.resources, name) for name in RESOURCES}
    measured["fmax_mhz"] = round(min(report.fmax_mhz.values()), 2) if report.fmax_mhz else None
    predicted = {name: getattr(model, name) for name in (*RESOURCES, "fmax_mhz")}
    error = {name: (None if not measured[name] or predicted[name] is None
                    else round(100.0 * (predicted[name] - measured[name]) / measured[name], 1))
             for name in predicted}
    return {"family": family, "dataflow": dataflow, "rows": rows, "cols": cols, "device": report.device,
            "synthesis": measured, "model": predicted, "error_pct": error, "pnr_skipped": report.pnr_skipped,
            "synth_command": report.synth_command, "key": report.key,
            "seconds": round(time.monotonic() - start, 1)}


def _cell(row: dict[str, object], name: str) -> str:
    synthesis, model, error = (row[k][name] for k in ("synthesis", "model", "error_pct"))  # type: ignore[index]

    def show(value: object) -> str:
        return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return f"{show(synthesis)} / {show(model)} ({'–' if error is None else f'{error:+.1f} %'})"


def table(rows: list[dict[str, object]]) -> str:
    """The markdown table: per design point, synthesis / model (error %) for each figure."""
    header = ["design point", "family", "LUT", "LUT4 cells", "FF", "carry", "DSP", "BRAM", "Fmax MHz"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        point = f"systolic {row['dataflow']} {row['rows']}x{row['cols']}"
        lines.append("| " + " | ".join([point, f"{row['family']} {row['device']}",
                                        *(_cell(row, n) for n in (*RESOURCES, "fmax_mhz"))]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    covered = {(k[0], k[1]) for k in fitted_keys()}
    jobs = [(f, d, r, c, not args.no_pnr) for f in FAMILIES for d in ("ws", "os") if (f, d) in covered
            for r, c in HELD_OUT_POINTS]
    start = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(_one, jobs))
    print("cells: synthesis / model (model error)\n")
    print(table(rows))
    for row in rows:
        if row["pnr_skipped"]:
            print(f"\n{row['family']} {row['dataflow']} {row['rows']}x{row['cols']}: no Fmax: {row['pnr_skipped']}",
                  end="")
    print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".tmp")
    partial.write_text(json.dumps({"points": rows, "wall_seconds": round(time.monotonic() - start, 1)}, indent=1)
                       + "\n")
    partial.replace(args.out)
    print(f"\n{len(rows)} design points in {time.monotonic() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
