"""Array size sweep: latency, energy and utilisation of square arrays from 4x4 to 64x64, WS and OS.

Sweeps ``array.size`` (rows = cols) and the dataflow around the Gemmini-like preset on the BERT-base
layer and MobileNetV2 with :func:`sim.sweep.run_sweep` (local processes, all cores), and prints one line
per design point and workload. Copy it and change SIZES, WORKLOADS or the base design.

    python examples/array_size_sweep.py                     # prints the table
    python examples/array_size_sweep.py --out sizes.csv     # and writes the whole results frame
"""

from __future__ import annotations

import argparse

from reports.pareto import directions, pareto_front
from sim.sweep import Space, run_sweep, write_results

SIZES = [4, 8, 16, 32, 64]
WORKLOADS = ["bert_base_layer", "mobilenet_v2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="gemmini", help="preset or TOML file to sweep around")
    parser.add_argument("--out", help="write the results frame here (.csv or .parquet)")
    args = parser.parse_args()
    space = Space(base=args.base, params={"array.size": SIZES, "array.dataflows": [["ws"], ["os"]]})
    frame = run_sweep(space, WORKLOADS)
    objectives = ["latency_s", "energy_j"]
    front = pareto_front(frame, objectives, maximize=directions(objectives), by=["workload"])
    frame["pareto"] = frame.index.isin(front.index)
    columns = ["workload", "array.size", "array.dataflows", "latency_s", "energy_j", "array_utilization",
               "dram_bytes", "pareto"]
    print(frame[columns].sort_values(["workload", "array.size", "array.dataflows"])
          .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        write_results(frame.drop(columns="pareto"), args.out)


if __name__ == "__main__":
    main()
