"""Mapping search speed: CPU seconds of ``mapper.decide.decide_layers`` and the searches it runs.

Runs each row in a fresh process (no memoised search or datasheet price is warm; imports, the zoo
graph and the design are made before the clock starts) and reports the CPU seconds of one
``decide_layers(graph, arch, MapOptions())`` (the per-layer mapping search for the whole model; a
cold process also pays the datasheet prices of every command shape it meets, which
:mod:`accel.energy` and :mod:`accel.timing` compute), the array layers, and how many searches ran
(``mapper.search._search``'s misses: layers of the same priced operands share one). With
``--reference`` it also times the reference search (``mapper.search._MEMO`` off: every layer searched
on its own, nothing shared within a search) and checks that both choose the same for every layer.

Targets (issue #18, not asserted): GPT-2 prefill mapped + simulated + summarised under 5 s, ResNet-50
under 0.3 s, both on Gemmini (``benchmarks/sim_speed.py`` times those); this reports the search's
share of them. The machine is shared: the load average is printed, and read ratios between rows.

    python benchmarks/search_speed.py
    python benchmarks/search_speed.py --reference --json /tmp/search_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROWS = tuple((model, preset) for preset in ("gemmini", "tpu-v1")
             for model in ("gpt2_prefill", "resnet50", "resnet18", "bert_base_layer"))


def measure(model: str, preset: str, reference: bool) -> dict[str, object]:
    """One row, in this process: the fast search, then (``reference``) the reference one."""
    from accel import config
    from mapper import MapOptions, search
    from mapper.decide import ArrayDecision, decide_layers
    from workloads import zoo

    arch, graph = config.load(preset), zoo.build(model)

    def run(memo: bool) -> tuple[float, int, list[tuple]]:
        search._MEMO = memo
        search.clear_caches()
        calls = 0
        original = search._search.__wrapped__

        def counted(*args: object) -> object:
            nonlocal calls
            calls += 1
            return original(*args)

        search._search.__wrapped__ = counted  # the reference calls it once per layer and dataflow set
        try:
            c0 = time.process_time()
            decisions = decide_layers(graph, arch, MapOptions())
            cpu = time.process_time() - c0
        finally:
            search._search.__wrapped__ = original
        searches = search._search.cache_info().misses if memo else calls
        chosen = [(d.layer.name, d.choice, d.choice.cost.steps, d.mapping) for d in decisions
                  if isinstance(d, ArrayDecision)]
        return cpu, searches, chosen

    cpu, searches, chosen = run(True)
    row: dict[str, object] = {"model": model, "preset": preset, "array_layers": len(chosen),
                              "decide_cpu_s": cpu, "searches": searches}
    if reference:
        ref_cpu, ref_searches, ref_chosen = run(False)
        row |= {"reference_cpu_s": ref_cpu, "reference_searches": ref_searches, "same": ref_chosen == chosen}
    return row


def measure_in_subprocess(model: str, preset: str, reference: bool) -> dict[str, object]:
    command = [sys.executable, __file__, "--one", model, preset] + (["--reference"] if reference else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "search_speed.json")
    parser.add_argument("--reference", action="store_true",
                        help="also time the reference search (nothing shared) and check it chooses the same")
    parser.add_argument("--only", help="comma-separated model names: run only these rows")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, reference=args.reference)))
        return

    load_before = os.getloadavg()
    wanted = set(args.only.split(",")) if args.only else None
    rows = [measure_in_subprocess(m, p, args.reference) for m, p in ROWS if wanted is None or m in wanted]
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    header = f"{'model':18s} {'preset':8s} {'array layers':>12s} {'searches':>8s} {'decide cpu s':>12s}"
    if args.reference:
        header += f" {'ref searches':>12s} {'ref cpu s':>9s} {'speed-up':>8s} same"
    print(header)
    for r in rows:
        line = (f"{r['model']:18s} {r['preset']:8s} {r['array_layers']:12d} {r['searches']:8d} "
                f"{r['decide_cpu_s']:12.3f}")
        if args.reference:
            line += (f" {r['reference_searches']:12d} {r['reference_cpu_s']:9.3f} "
                     f"{r['reference_cpu_s'] / r['decide_cpu_s']:7.1f}x {'yes' if r['same'] else 'NO'}")
        print(line)
    out = {"runs": rows, "load_average": [load_before[0], os.getloadavg()[0]], "python": sys.version.split()[0]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
