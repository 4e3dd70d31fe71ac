"""Sparse-vs-dense study: ResNet-50 and the BERT-base layer at dense, 2:4, 1:4 and 2:8 on `sparse-nm`.

For each model and pattern it maps and simulates the graph with every weight-bearing layer N:M sparse
and reports latency, energy and DRAM traffic relative to dense. Copy it and change MODELS, PATTERNS or
the design.

    python examples/nm_study.py                 # prints the table
    python examples/nm_study.py --out nm.csv    # and writes it as CSV
"""

from __future__ import annotations

import argparse

import pandas as pd

import mapper
import sim
import workloads
from accel import config

MODELS = ("resnet50", "bert_base_layer")
PATTERNS = (None, "2:4", "1:4", "2:8")


def study(arch_name: str = "sparse-nm", models: tuple[str, ...] = MODELS) -> pd.DataFrame:
    arch = config.load(arch_name)
    rows = []
    for model in models:
        dense_graph = workloads.load(model)
        for pattern in PATTERNS:
            graph = workloads.sparsify(dense_graph, pattern) if pattern else dense_graph
            summary = sim.simulate(mapper.map_graph(graph, arch)).summary()
            rows.append({"model": model, "pattern": pattern or "dense", "latency_s": summary["latency_s"],
                         "energy_pj": summary["energy_pj"], "dram_bytes": summary["dram_bytes"]})
    table = pd.DataFrame(rows)
    for column in ("latency_s", "energy_pj", "dram_bytes"):
        dense = table.groupby("model")[column].transform("first")
        table[f"{column.split('_')[0]}_vs_dense"] = table[column] / dense
    table["speedup"] = 1 / table["latency_vs_dense"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="sparse-nm")
    parser.add_argument("--out", help="write the table as CSV here")
    args = parser.parse_args()
    table = study(args.arch)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
