"""Design-space sweeps: enumeration, invalid points, executors that agree, files, resume after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accel.errors import ConfigError
from sim.sweep import (
    COLUMNS,
    METRICS,
    Space,
    SweepError,
    load_spec,
    materialize,
    read_results,
    run_sweep,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _accel(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accel.cli", *args], capture_output=True, text=True,
                          env=_env(), timeout=120, **kwargs)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["point", "workload"]).reset_index(drop=True)


# -- the space ------------------------------------------------------------------------------------

def test_product_enumerates_row_major_in_declaration_order_with_canonical_values():
    space = Space(params={"array.size": [8, 16], "scratchpad.size_bytes": ["128 KiB", 262144],
                          "array.dataflows": [["WS", "os"]]})
    assert space.size == 4 and space.paths == ("array.size", "scratchpad.size_bytes", "array.dataflows")
    assert space.points() == [
        {"array.size": 8, "scratchpad.size_bytes": 131072, "array.dataflows": ["ws", "os"]},
        {"array.size": 8, "scratchpad.size_bytes": 262144, "array.dataflows": ["ws", "os"]},
        {"array.size": 16, "scratchpad.size_bytes": 131072, "array.dataflows": ["ws", "os"]},
        {"array.size": 16, "scratchpad.size_bytes": 262144, "array.dataflows": ["ws", "os"]},
    ]


def test_a_boolean_must_be_true_or_false_and_the_mappers_dataflow_is_written_like_the_arrays():
    space = Space(params={"array.split_folds": [True, False], "mapper.dataflow": ["WS", " os"]})
    assert space.points() == [
        {"array.split_folds": True, "mapper.dataflow": "ws"},
        {"array.split_folds": True, "mapper.dataflow": "os"},
        {"array.split_folds": False, "mapper.dataflow": "ws"},
        {"array.split_folds": False, "mapper.dataflow": "os"},
    ]
    with pytest.raises(ConfigError, match=r"^array\.split_folds: must be true or false, not 'false'$"):
        Space(params={"array.split_folds": ["false"]})
    with pytest.raises(ConfigError, match=r"^mapper\.keep_operands: must be true or false, not 0$"):
        Space(params={"mapper.keep_operands": [0]})
    with pytest.raises(ConfigError, match=r"^mapper\.dataflow: Dataflow must be one of 'ws', 'os', 'is', not 'rs'$"):
        Space(params={"mapper.dataflow": ["rs"]})


def test_zip_group_is_one_axis_and_tied_size_sets_rows_and_cols():
    space = Space(params={"workload.nm": ["dense", "2:4"]},
                  zip=[{"array.rows": [8, 16], "array.cols": [32, 16]}])
    assert space.points() == [
        {"workload.nm": "dense", "array.rows": 8, "array.cols": 32},
        {"workload.nm": "dense", "array.rows": 16, "array.cols": 16},
        {"workload.nm": "2:4", "array.rows": 8, "array.cols": 32},
        {"workload.nm": "2:4", "array.rows": 16, "array.cols": 16},
    ]
    arch, graph, options = materialize({"array.size": 32, "mapper.allocator": "greedy"}, "gemmini",
                                       workload="bert_base_layer")
    assert (arch.array.rows, arch.array.cols, options.allocator) == (32, 32, "greedy")
    assert graph.name == "bert_base_layer"
    with pytest.raises(ConfigError, match=r"^array\.rows: swept twice"):
        Space(params={"array.size": [8], "array.rows": [4]})
    with pytest.raises(ConfigError, match=r"^zip\[0\]: lists must have equal lengths, not array.rows 2, "
                                          r"array.cols 1$"):
        Space(zip=[{"array.rows": [8, 16], "array.cols": [8]}])


def test_lhs_covers_every_value_evenly_and_samples_are_seeded():
    params = {"array.size": [4, 8, 16, 32], "dram.bandwidth_bytes_per_cycle": [4.0, 8.0, 16.0, 32.0],
              "clock_hz": [2e8, 4e8, 6e8, 8e8]}
    lhs = Space(params=params, sample="lhs", samples=8, seed=3).points()
    assert len(lhs) == 8
    for path, values in params.items():  # 8 strata over 4 values: each value exactly twice
        assert sorted(p[path] for p in lhs) == sorted(values * 2)
    assert lhs == Space(params=params, sample="lhs", samples=8, seed=3).points()
    assert lhs != Space(params=params, sample="lhs", samples=8, seed=4).points()
    rand = Space(params=params, sample="random", samples=10, seed=1).points()
    assert len({json.dumps(p, sort_keys=True) for p in rand}) == 10  # distinct
    assert all(p in Space(params=params).points() for p in rand)


# -- rows -------------------------------------------------------------------------------------------

def test_invalid_points_are_kept_with_their_reason():
    space = Space(base="sparse-nm", params={"array.rows": [3, 8], "scratchpad.size_bytes": [0, "128 KiB"],
                                            "workload.nm": ["2:4"]})
    frame = run_sweep(space, ["bert_base_layer"], max_workers=1)
    assert list(frame.columns) == [*COLUMNS[:4], "array.rows", "scratchpad.size_bytes", "workload.nm",
                                   *COLUMNS[4:]]
    assert list(frame["status"]) == ["invalid", "invalid", "invalid", "ok"]
    assert frame["reason"][1].startswith("array.rows must be a multiple of N to run 2:4 sparsity, not 3")
    assert frame["reason"][0].endswith("2:8 sparsity, not 3; scratchpad.size_bytes must be a positive integer, not 0")
    assert frame["reason"][2] == "scratchpad.size_bytes must be a positive integer, not 0"
    assert frame.loc[:2, list(METRICS)].isna().all().all()
    ok = frame.iloc[3]
    assert ok["reason"] == "" and ok["throughput_per_s"] == pytest.approx(1 / ok["latency_s"])
    assert ok["edp_js"] == pytest.approx(ok["energy_j"] * ok["latency_s"])
    assert ok["peak_macs_per_cycle"] == 8 * 16 and ok["dsp"] == 8 * 16  # ecp5: one DSP per int8 PE
    assert json.loads(ok["params"]) == {"array.rows": 8, "scratchpad.size_bytes": 131072, "workload.nm": "2:4"}
    arch, graph, _ = materialize(ok, "sparse-nm")
    assert arch.array.rows == 8 and arch.scratchpad.size_bytes == 131072 and graph.name == "bert_base_layer@2:4"


def test_a_mapper_option_is_checked_when_the_space_is_built_and_its_choice_written_in_lowercase():
    with pytest.raises(ConfigError, match=r"^mapper\.allocator: Allocator must be one of none, greedy, firstfit, "
                                          r"ilp, not 'ilpx'$"):
        Space(params={"mapper.allocator": ["none", "ilpx"]})
    with pytest.raises(ConfigError, match=r"^mapper\.mip_gap: ILP MIP gap must be in \[0, 1\), not 1.5$"):
        Space(params={"mapper.mip_gap": [1.5]})
    space = Space(params={"mapper.allocator": ["ILP", " greedy"], "mapper.objective": ["EDP"],
                          "mapper.dataflow": ["OS", None]})
    assert space.points() == [{"mapper.allocator": a, "mapper.objective": "edp", "mapper.dataflow": d}
                              for a in ("ilp", "greedy") for d in ("os", None)]


def test_the_workloads_batch_and_an_onnx_models_symbolic_dimensions_are_parameters(tmp_path):
    from onnx import TensorProto, helper, numpy_helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 32])
    w = numpy_helper.from_array(np.zeros((64, 32), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [x], [y], [w])
    model = tmp_path / "dynamic.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))

    space = Space(base="gemmini", params={"workload.batch": [1, 2], "workload.dim.seq": [16, 128]})
    frame = run_sweep(space, [str(model)], max_workers=1)
    assert list(frame["status"]) == ["ok"] * 4
    assert list(frame["macs"]) == [b * s * 64 * 32 for b in (1, 2) for s in (16, 128)]
    _, graph, _ = materialize(frame.iloc[3], "gemmini")
    assert graph.tensors["y"].shape == (2, 128, 32)

    zoo = run_sweep(Space(base="gemmini", params={"workload.batch": [2, 0]}), ["bert_base_layer"], max_workers=1)
    assert list(zoo["status"]) == ["ok", "invalid"]
    assert zoo["reason"][1] == "Zoo model 'bert_base_layer': batch must be a positive integer, not 0"
    with pytest.raises(ConfigError, match=r"workload\.dim\.seq: must be an integer, not '128'"):
        Space(params={"workload.dim.seq": ["128"]})


SMALL = Space(base="gemmini", params={"array.size": [8, 16], "array.dataflows": [["ws"], ["os"]],
                                      "scratchpad.size_bytes": ["64 KiB", 100]})  # 100: not whole words


@pytest.mark.slow
def test_serial_processes_and_dask_give_identical_frames():
    distributed = pytest.importorskip("distributed")
    serial = run_sweep(SMALL, ["bert_base_layer"], max_workers=1)
    assert set(serial["status"]) == {"ok", "invalid"}
    local = run_sweep(SMALL, ["bert_base_layer"], max_workers=2)
    pd.testing.assert_frame_equal(_sorted(serial), _sorted(local))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        dask = run_sweep(SMALL, ["bert_base_layer"], executor=client)
        by_address = run_sweep(SMALL, ["bert_base_layer"], executor=cluster.scheduler_address)
    pd.testing.assert_frame_equal(_sorted(serial), _sorted(dask))
    pd.testing.assert_frame_equal(_sorted(serial), _sorted(by_address))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_results_round_trip_through_parquet_and_csv(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    space = Space(base="sparse-nm", params={"array.rows": [3, 16], "array.sparsity": [[], ["2:4"]],
                                            "dram.bandwidth_bytes_per_cycle": [12.5]})
    frame = run_sweep(space, ["bert_base_layer"], max_workers=1)
    assert list(frame["array.sparsity"]) == ["", "2:4", "", "2:4"]
    path = write_results(frame, tmp_path / f"r{suffix}")
    pd.testing.assert_frame_equal(read_results(path), frame)


# -- files, resume, command line ------------------------------------------------------------------------

RESUME_SPEC = """\
[sweep]
base = "gemmini"
workloads = ["bert_base_layer"]

[params]
"array.size" = [8]
"array.dataflows" = [["ws"], ["os"]]
"scratchpad.size_bytes" = ["128 KiB", "256 KiB"]
"dram.bandwidth_bytes_per_cycle" = [4.0, 6.0, 8.0, 12.0, 16.0, 24.0]
"""


@pytest.mark.slow
def test_resume_after_sigkill_recomputes_nothing_that_finished(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(RESUME_SPEC)
    out = tmp_path / "r.parquet"
    journal = tmp_path / "r.parquet.partial.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "accel.cli", "sweep", str(spec), "--out", str(out),
                             "--workers", "2", "--no-progress"], env=_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= 3):
        assert proc.poll() is None, "the sweep finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    finished = journal.read_text().count("\n")
    assert 3 <= finished < 24

    again = _accel("sweep", str(spec), "--out", str(out))
    assert again.returncode == 2
    assert again.stderr == (f"accel: error: {journal} exists; pass --resume (resume=True) to continue that sweep, "
                            f"or remove it\n")
    resumed = _accel("sweep", str(spec), "--out", str(out), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert re.match(rf"computed {24 - finished} of 24 rows \({finished} reused\); 24 ok; wrote ", resumed.stdout)
    assert not journal.exists()

    uninterrupted = run_sweep(load_spec(spec).space, ["bert_base_layer"], max_workers=1)
    pd.testing.assert_frame_equal(read_results(out), uninterrupted)

    noop = _accel("sweep", str(spec), "--out", str(out), "--resume")
    assert noop.returncode == 0
    assert noop.stdout == f"all 24 rows (24 points x 1 workloads) are already done in {out}; nothing to compute\n"


def test_library_refuses_to_overwrite_and_resume_of_finished_sweep_is_a_no_op(tmp_path):
    space = Space(base="gemmini", params={"array.size": [16], "scratchpad.size_bytes": ["256 KiB", 0]})
    out = tmp_path / "r.csv"
    first = run_sweep(space, ["bert_base_layer"], max_workers=1, out=out)
    assert first["reason"][1] == "scratchpad.size_bytes must be a positive integer, not 0"
    with pytest.raises(SweepError, match=r"r\.csv exists; pass --resume"):
        run_sweep(space, ["bert_base_layer"], max_workers=1, out=out)
    calls = []
    again = run_sweep(space, ["bert_base_layer"], max_workers=1, out=out, resume=True,
                  progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 2)]
    pd.testing.assert_frame_equal(again, first)


@pytest.mark.parametrize(("spec", "message"), [
    ('[sweep]\nworkloads = ["resnet18"]\n[params]\n"array.rowz" = [8]\n',
     "array.rowz: unknown parameter (expected clock_hz, workload.nm, workload.batch, workload.dim.NAME, array.size "
     "or a field such as array.rows, scratchpad.size_bytes, mapper.allocator)"),
    ('[sweep]\nworkloads = ["resnet18"]\n[params]\narray.rows = [8, "x"]\n', "array.rows: must be an integer, not 'x'"),
    ('[sweep]\nworkloads = ["resnet18"]\n[params]\n', "params: the space is empty (sweep at least one parameter)"),
    ('[sweep]\nworkloads = ["resnet99"]\n[params]\n"array.size" = [8]\n',
     "sweep.workloads: unknown workload 'resnet99' (a zoo model such as resnet18, or an existing .onnx/.csv file)"),
    ('[sweep]\nworkloads = ["models/net.onnx"]\n[params]\n"array.size" = [8]\n',
     "sweep.workloads: no file {folder}/models/net.onnx (a workload file is found relative to the spec's folder)"),
    ('[sweep]\nworkloads = ["resnet18"]\nsample = "lhs"\n[params]\n"array.size" = [8]\n',
     "sweep.samples must be a positive integer with sample = 'lhs', not None"),
    ('[sweep]\nworkloads = ["resnet18"]\nsamples = 2\n[params]\n"array.size" = [8, 16, 32]\n',
     "sweep.samples = 2 needs sample = 'random' or 'lhs' (a product enumerates every point)"),
])
def test_spec_errors_are_one_line_naming_file_and_key(tmp_path, spec, message):
    path = tmp_path / "bad.toml"
    path.write_text(spec)
    proc = _accel("sweep", str(path), "--out", str(tmp_path / "r.csv"))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"accel: error: {path}: {message.format(folder=tmp_path)}\n"


def test_a_workload_file_that_cannot_be_read_stops_the_sweep_before_any_row(tmp_path):
    (tmp_path / "topology.csv").write_text("Layer name, IFMAP Height, IFMAP Width\nc1, 8, x\n")
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf")
    for workload in ("topology.csv", "model.onnx"):
        path = tmp_path / "spec.toml"
        path.write_text(f'[sweep]\nworkloads = ["resnet18", "{workload}"]\n[params]\n"array.size" = [8, 16]\n')
        out = tmp_path / "r.csv"
        proc = _accel("sweep", str(path), "--out", str(out), "--workers", "1")
        assert (proc.returncode, proc.stdout) == (2, "")
        assert re.fullmatch(rf"accel: error: {re.escape(str(path))}: sweep\.workloads: [^\n]*"
                            rf"{re.escape(str(tmp_path / workload))}[^\n]*\n", proc.stderr), proc.stderr
        assert not out.exists() and not out.with_name("r.csv.partial.jsonl").exists()
    with pytest.raises(ConfigError, match=r"^workloads: ONNX file .*model\.onnx.* cannot be parsed"):
        run_sweep(Space(params={"array.size": [8]}), [str(tmp_path / "model.onnx")], max_workers=1)


def test_help_explains_the_spec_format():
    proc = _accel("sweep", "--help")
    assert proc.returncode == 0
    assert '"array.size" = [8, 16, 32]' in proc.stdout and "[[zip]]" in proc.stdout and "--resume" in proc.stdout


def test_every_row_has_the_designs_area_and_an_fpga_device_is_a_constraint(tmp_path):
    from accel.area import area_mm2
    from sim.sweep import Space, materialize, run_sweep

    topology = tmp_path / "fc.csv"
    topology.write_text("Layer, M, N, K,\nfc1, 32, 32, 32,\n")
    space = Space(base="fpga-small", params={"array.size": [2, 8]}, fpga_family="ecp5", fpga_device="25k")
    frame = run_sweep(space, [str(topology)], max_workers=1)
    small, large = frame.iloc[0], frame.iloc[1]
    assert small["status"] == "ok"
    assert small["area_mm2"] == pytest.approx(area_mm2(materialize(small, "fpga-small", workload=str(topology))[0])
                                              .total_mm2)
    assert large["status"] == "invalid"  # kept, never dropped
    assert large["reason"].startswith("the 8x8 ws tile does not fit the ecp5 25k: it needs ") and "DSPs" in \
        large["reason"]


def test_points_that_differ_only_off_chip_run_in_one_chunk():
    """Two workers never both map one on-chip design: its bandwidth variants share a chunk (and a
    worker's memos); with fewer groups than two per worker, rows are cut by count, each once."""
    from sim.sweep.runner import _Tasks

    space = Space(base="gemmini", params={"dram.bandwidth_bytes_per_cycle": [8.0, 16.0, 32.0],
                                          "scratchpad.size_bytes": ["128 KiB", "256 KiB"],
                                          "array.dataflows": [["ws"], ["os"]]})
    tasks = _Tasks(space, ["resnet18"])
    chunks = tasks.chunks(tasks.identity, workers=2)
    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 3]
    for chunk in chunks:
        on_chip = {json.dumps({p: v for p, v in json.loads(params).items() if not p.startswith("dram.")},
                              sort_keys=True) for _, _, params, _ in chunk}
        assert len(on_chip) == 1
    many = tasks.chunks(tasks.identity, workers=4)
    for cut in (chunks, many):
        assert sorted(key for chunk in cut for _, key, _, _ in chunk) == sorted(tasks.identity)
    assert len(many) == 12
