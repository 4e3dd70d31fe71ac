"""Scratchpad size x allocator: DRAM traffic and latency with activations kept on chip (or not).

Sweeps the scratchpad size and the mapper's allocator (``none``: every tensor through DRAM;
``greedy``; ``ilp``: HiGHS, time-limited) around the Gemmini-like preset on the BERT-base layer,
and prints DRAM bytes and latency relative to ``none`` at the same size. The ILP is the slow one;
``mapper.time_limit_s`` bounds each solve. Copy it and change SIZES, ALLOCATORS or the workload.

The allocators take effect through ``mapper.map_graph(graph, arch, MapOptions(allocator=...))``;
a mapper that ignores the option gives equal rows (ratio 1) for every allocator.

    python examples/scratchpad_ilp_study.py
    python examples/scratchpad_ilp_study.py --out study.csv
"""

from __future__ import annotations

import argparse

from sim.sweep import Space, run_sweep

SIZES = ["64 KiB", "256 KiB", "1 MiB"]
ALLOCATORS = ["none", "greedy", "ilp"]


def study(workload: str = "bert_base_layer"):  # noqa: ANN201 - a pandas DataFrame
    space = Space(base="gemmini", params={"scratchpad.size_bytes": SIZES, "mapper.allocator": ALLOCATORS,
                                          "mapper.time_limit_s": [5.0]})
    frame = run_sweep(space, [workload])
    table = frame[["scratchpad.size_bytes", "mapper.allocator", "status", "dram_bytes", "latency_s",
                   "energy_j"]].copy()
    none = table[table["mapper.allocator"] == "none"].set_index("scratchpad.size_bytes")
    table["dram_vs_none"] = table["dram_bytes"] / table["scratchpad.size_bytes"].map(none["dram_bytes"])
    table["latency_vs_none"] = table["latency_s"] / table["scratchpad.size_bytes"].map(none["latency_s"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="bert_base_layer")
    parser.add_argument("--out", help="write the table as CSV here")
    args = parser.parse_args()
    table = study(args.workload)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
