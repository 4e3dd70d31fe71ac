"""Sweep speed: design points per second for ResNet-18 on the Gemmini-like preset, caches warm.

Sweeps 24 design points (DRAM bandwidth x scratchpad size x dataflow around ``gemmini``) of ResNet-18
with :func:`sim.sweep.run_sweep` on: this process (``max_workers=1``), a local pool of 1 and of 2 processes
(``--trials`` fresh pools of each, alternating; the median is reported), and a 2-worker Dask
``LocalCluster``. Each executor first runs a warm-up sweep of other points (imports, the energy
table, the workload graph cached in every worker), then the timed one. Prints a table and writes
JSON (``--json``, default ``benchmarks/results/sweep_speed.json``). The target is 5 points per
second per core, and 1.8x with 2 local processes over 1.

The pools' workers also report the CPU seconds of their chunks: on a shared machine the wall-clock
ratio of 2 processes over 1 measures the other jobs (2 workers get no more CPU than 1 when the
cores are taken), while the 2 workers' CPU seconds summed, over the busiest's, are the speed-up
2 idle cores give (it is near 2 when the work is not repeated between workers and is balanced).
A worker's designs that differ off chip share programs, or resume one from an earlier program's
checkpoint where their decisions begin alike (:mod:`mapper.programs`).

It also profiles one point in this process, with the mapping search's and the program memos emptied
(:mod:`mapper.programs`: designs that map alike share one program), and reports the share of mapping
(``mapper.map_graph``), simulation (``sim.simulate``) and the summary/energy accounting.

    python benchmarks/sweep_speed.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

import mapper
import sim
from accel import config
from sim.sweep import Space, run_sweep

WORKLOAD = "resnet18"
TIMED = Space(base="gemmini", params={"dram.bandwidth_bytes_per_cycle": [8.0, 12.0, 16.0, 24.0, 32.0, 48.0],
                                      "scratchpad.size_bytes": ["128 KiB", "256 KiB"],
                                      "array.dataflows": [["ws"], ["os"]]})
WARMUP = Space(base="gemmini", params={"dram.bandwidth_bytes_per_cycle": [10.0, 20.0, 40.0, 64.0]})


def _time_chunks(folder: str) -> None:
    """A pool worker's initializer: each chunk it runs appends its CPU seconds to ``folder/<pid>``
    (``sim.sweep.point.run_chunk`` wrapped; the pool unpickles the work by that name)."""
    import sim.sweep.point as point

    inner = point.run_chunk

    def timed(*args: object, **kwargs: object) -> object:
        start = time.process_time()
        rows = inner(*args, **kwargs)
        with open(Path(folder) / str(os.getpid()), "a") as f:
            f.write(f"{time.process_time() - start}\n")
        return rows

    point.run_chunk = timed


def _worker_cpu(folder: Path) -> list[float]:
    """The CPU seconds each worker spent in its chunks, from :func:`_time_chunks`' files (emptied)."""
    spent = []
    for path in sorted(folder.iterdir()):
        spent.append(sum(float(x) for x in path.read_text().split()))
        path.unlink()
    return spent


def _timed(executor: object, max_workers: int | None, chunks: Path | None = None) -> dict[str, float]:
    run_sweep(WARMUP, [WORKLOAD], executor=executor, max_workers=max_workers)
    if chunks is not None:
        _worker_cpu(chunks)  # the warm-up's
    t0, c0 = time.perf_counter(), time.process_time()
    frame = run_sweep(TIMED, [WORKLOAD], executor=executor, max_workers=max_workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert (frame["status"] == "ok").all(), frame["reason"].unique()
    row = {"points": len(frame), "wall_s": wall, "points_per_s": len(frame) / wall}
    if executor is None:  # in this process: its CPU time is the sweep's (on a shared machine, wall is not)
        row["cpu_s"] = cpu
        row["points_per_cpu_s"] = len(frame) / cpu
    if chunks is not None:  # the workers' CPU seconds: their sum over the busiest's is the speed-up on idle cores
        spent = _worker_cpu(chunks)
        row["worker_cpu_s"] = [round(x, 3) for x in spent]
        row["cpu_speedup"] = sum(spent) / max(spent)
    return row


def profile_point() -> dict[str, float]:
    """Wall time of mapping, simulating and summarising one ResNet-18 point, best of 3, in a warm
    process but with the search's and the program memos emptied first (a design that shares nothing)."""
    from mapper.search import clear_caches

    arch = config.load("gemmini")
    graph = __import__("workloads").load(WORKLOAD)
    best: dict[str, float] = {}
    for _ in range(4):
        clear_caches()
        t0 = time.perf_counter()
        plan = mapper.map_graph(graph, arch)
        t1 = time.perf_counter()
        result = sim.simulate(plan)
        t2 = time.perf_counter()
        result.summary()
        t3 = time.perf_counter()
        for name, value in (("map_s", t1 - t0), ("simulate_s", t2 - t1), ("summary_s", t3 - t2)):
            best[name] = min(best.get(name, value), value)
    best["commands"] = len(plan.commands)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "sweep_speed.json")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    parser.add_argument("--trials", type=int, default=3,
                        help="timed sweeps per local pool size (fresh pools, 1 and 2 workers alternating); the "
                             "median is reported (default 3)")
    args = parser.parse_args()

    rows = [{"executor": "in-process (max_workers=1)", "cores": 1, **_timed(None, 1)}]
    trials: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(args.trials):  # 1 and 2 workers alternate, so a change in the machine's load hits both
        for workers in (1, 2):
            # spawned, not forked: a forked worker would inherit this process's warm search and program memos
            spawn = multiprocessing.get_context("spawn")
            with tempfile.TemporaryDirectory() as folder, concurrent.futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=spawn, initializer=_time_chunks, initargs=(folder,)) as pool:
                trials[workers].append(_timed(pool, workers, Path(folder)))
    for workers, runs in trials.items():
        median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        rows.append({"executor": f"local processes ({workers})", "cores": workers, **median,
                     "wall_s_trials": [round(r["wall_s"], 3) for r in runs]})
    if not args.no_dask:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            rows.append({"executor": "dask LocalCluster (2 workers)", "cores": 2, **_timed(client, None)})
    for row in rows:
        row["points_per_s_per_core"] = row["points_per_s"] / row["cores"]
    point = profile_point()

    print(f"ResNet-18 on gemmini, {rows[0]['points']} design points per run, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'executor':32} {'cores':>5} {'wall s':>8} {'points/s':>9} {'per core':>9}")
    for row in rows:
        print(f"{row['executor']:32} {row['cores']:>5} {row['wall_s']:>8.2f} {row['points_per_s']:>9.2f} "
              f"{row['points_per_s_per_core']:>9.2f}")
    pools = {row["cores"]: row for row in rows if row["executor"].startswith("local processes")}
    speedup = pools[2]["points_per_s"] / pools[1]["points_per_s"]
    cpu_speedup = pools[2]["cpu_speedup"]
    print(f"in-process: {rows[0]['points_per_cpu_s']:.2f} points per CPU second; 2 local processes over 1: "
          f"{speedup:.2f}x, medians of {args.trials} trials (target 1.8x; read it on an idle machine); "
          f"the 2 workers' CPU seconds {pools[2]['worker_cpu_s']} (1 worker: {pools[1]['worker_cpu_s']}): "
          f"{cpu_speedup:.2f}x on 2 idle cores")
    total = point["map_s"] + point["simulate_s"] + point["summary_s"]
    print(f"one point, nothing shared ({point['commands']:.0f} commands): map {point['map_s'] * 1e3:.0f} ms "
          f"({point['map_s'] / total:.0%}), simulate {point['simulate_s'] * 1e3:.0f} ms "
          f"({point['simulate_s'] / total:.0%}), summary+energy {point['summary_s'] * 1e3:.0f} ms "
          f"({point['summary_s'] / total:.0%}); target 5 points/s/core = 200 ms per point")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"workload": WORKLOAD, "arch": "gemmini", "cpu_count": os.cpu_count(),
                                     "python": platform.python_version(), "runs": rows, "one_point": point,
                                     "speedup_2_over_1_processes": speedup,
                                     "cpu_speedup_2_processes": cpu_speedup, "load_average": os.getloadavg()[0]},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
