"""The `accel` command line: every subcommand answers --help, bad input exits 2 with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from accel.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [[], ["info"], ["workload"], ["run"], ["map"], ["rtl"], ["rtl", "generate"], ["fpga"],
                                  ["fpga", "synth"], ["fpga", "build"], ["fpga", "run"]])
def test_every_subcommand_has_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: accel" in capsys.readouterr().out


def test_info_lists_presets_and_prints_one(capsys):
    code, out, _ = run(capsys, "info")
    listed = {line.split()[0] for line in out.splitlines()}
    assert code == 0 and {"tpu-v1", "gemmini", "eyeriss", "fpga-small"} <= listed
    code, out, _ = run(capsys, "info", "tpu-v1")
    assert code == 0 and "256 x 256 PEs" in out and "700 MHz" in out


def test_info_toml_loads_back(capsys, tmp_path):
    from accel import config

    code, out, _ = run(capsys, "info", "eyeriss", "--toml")
    path = tmp_path / "e.toml"
    path.write_text(out)
    assert code == 0 and config.load(path) == config.load("eyeriss")


def test_workload_json_has_exact_total(capsys):
    code, out, _ = run(capsys, "workload", "resnet18", "--json")
    data = json.loads(out)
    assert code == 0 and data["total_macs"] == 1_814_073_344
    assert sum(layer["macs"] for layer in data["layers"]) == data["total_macs"]


def test_run_no_keep_moves_more_dram_bytes_on_alexnet(capsys, tmp_path):
    figures = {}
    for flags in ((), ("--no-keep",)):
        code, out, _ = run(capsys, "run", "--arch", "eyeriss", "--workload", "alexnet", *flags,
                           "--out", str(tmp_path / (flags[0][2:] if flags else "keep")), "--json")
        assert code == 0
        figures[flags] = json.loads(out)["dram_bytes"]
    assert figures[()] < figures[("--no-keep",)]  # AlexNet's split reductions keep their weight columns


def test_symbolic_onnx_dimensions_are_sized_with_dim(capsys, tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", 4])
    w = numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [x], [y], [w])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    code, out, _ = run(capsys, "workload", str(path), "--dim", "seq=64", "--json")
    assert code == 0 and json.loads(out)["total_macs"] == 64 * 8 * 4
    code, _, err = run(capsys, "workload", str(path), "--dim", "tokens=64")
    assert code == 2 and "no input has a symbolic dimension 'tokens'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["workload", str(path), "--dim", "seq"])
    assert exit_info.value.code == 2 and "must be NAME=SIZE" in capsys.readouterr().err


def test_run_writes_reports(capsys, tmp_path):
    code, out, _ = run(capsys, "run", "--arch", "gemmini", "--workload", "resnet18", "--out", str(tmp_path), "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary["macs"] == 1_814_073_344 and summary["total_cycles"] > 0
    assert summary["energy_pj"] > 0 and summary["average_power_w"] > 0
    for name in ("summary.csv", "layers.csv", "units.csv", "energy.csv", "power.csv", "layer_cycles.png",
                 "power.png", "trace.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "tpu-v9"], r"^accel: error: tpu-v9: not a preset \(.*\) and no such TOML file\n$"),
        (["workload", "resnet19"], r"^accel: error: .*resnet19.*\n$"),
        (["run", "--arch", "tpu-v1", "--workload", "alexnet", "--dataflow", "os"],
         r"^accel: error: tpu-v1 supports dataflows ws, not os\n$"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    import re

    assert re.match(message, err), err


def test_bad_toml_file_names_the_file(capsys, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = 'x'\nclock_hz = 1e9\n[array]\nrows = -1\ncols = 4\n")
    code, _, err = run(capsys, "info", str(path))
    assert code == 2
    assert f"{path}: array.rows must be a positive integer, not -1" in err
    assert f"{path}: section [dram] is missing" in err
    assert "Traceback" not in err


def test_the_installed_command_exits_2_without_traceback(tmp_path):
    exe = shutil.which("accel") or str(__import__("pathlib").Path(sys.executable).with_name("accel"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    proc = subprocess.run([exe, "workload", str(garbage)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("accel: error: ") and "garbage.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([exe, "run", "--batch", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "must be a positive integer" in proc.stderr


@pytest.mark.parametrize(("argv", "module"), [
    (["pe", "--arch", "fpga-small"], "mac_pe"),
    (["systolic", "--rows", "8", "--cols", "8", "--dataflow", "ws"], "systolic_ws_8x8"),
    (["systolic", "--arch", "fpga-small", "--dataflow", "os"], "systolic_os_4x4"),
    (["requant", "--mode", "single", "--lanes", "2"], "requant_single"),
    (["nm_compressor", "--nm", "2:8"], "nm_compressor_2_8"),
    (["sparse_systolic", "--nm", "1:4", "--rows", "4", "--cols", "2"], "sparse_systolic_1_4_4x2"),
])
def test_rtl_generate_writes_verilog_that_icarus_parses(capsys, tmp_path, argv, module):
    code, out, _ = run(capsys, "rtl", "generate", *argv, "--out", str(tmp_path))
    assert code == 0 and f"{module}.v" in out and f"{module}.json" in out
    manifest = json.loads((tmp_path / f"{module}.json").read_text())
    assert {p["name"] for p in manifest["ports"]} >= {"clk", "rst"}
    assert manifest["latency"] >= 1
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed (apt-get install iverilog)")
    proc = subprocess.run([iverilog, "-o", str(tmp_path / "unit.vvp"), str(tmp_path / f"{module}.v")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.rtl
def test_rtl_generate_npu_writes_verilog_that_icarus_compiles(capsys, tmp_path):
    """``accel rtl generate npu --arch fpga-small`` writes the whole NPU; ``iverilog -g2012`` (the mode
    the cocotb benches use) compiles it with its default program and queue sizes."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed (apt-get install iverilog)")
    code, out, _ = run(capsys, "rtl", "generate", "npu", "--arch", "fpga-small", "--out", str(tmp_path / "build"))
    assert code == 0 and "npu.v" in out and "npu.json" in out
    manifest = json.loads((tmp_path / "build" / "npu.json").read_text())
    assert manifest["parameters"]["arch"] == "fpga-small"
    assert {"prog_data", "rd_addr", "wr_data", "trace_end"} <= {p["name"] for p in manifest["ports"]}
    proc = subprocess.run([iverilog, "-g2012", "-o", str(tmp_path / "npu.vvp"), "-s", "npu",
                           str(tmp_path / "build" / "npu.v")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["pe", "--lanes", "2"], "accel rtl generate pe takes --arch, --name, --out, not --lanes"),
    (["npu", "--nm", "2:4", "--rows", "8"], "accel rtl generate npu takes --arch, --name, --out, not --rows, --nm"),
    (["requant", "--nm", "2:4"], "accel rtl generate requant takes --mode, --lanes, --arch, --name, --out, not --nm"),
    (["sparse_systolic", "--dataflow", "os"],
     "accel rtl generate sparse_systolic takes --rows, --cols, --nm, --arch, --name, --out, not --dataflow"),
])
def test_rtl_generate_rejects_options_a_unit_does_not_take(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, "rtl", "generate", *argv, "--out", str(tmp_path / "out"))
    assert (code, err) == (2, f"accel: error: {message}\n")
    assert not (tmp_path / "out").exists()


def _copy_of_fpga_small(tmp_path, *edits: tuple[str, str]):
    """A user's design: the fpga-small preset copied to a file (its `name` still says fpga-small), edited."""
    from importlib import resources

    text = (resources.files("accel") / "presets" / "fpga_small.toml").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("design", "argv", "module", "dataflow"), [
    ("mine", [], "systolic_os_4x4", "os"),               # the design's first dataflow, as the simulator runs it
    ("mine", ["--dataflow", "ws"], "systolic_ws_4x4", "ws"),  # --dataflow still chooses among those it lists
    ("eyeriss", [], "systolic_os_12x14", "os"),
    ("tpu-v1", ["--rows", "2", "--cols", "2"], "systolic_ws_2x2", "ws"),  # its formats, not its 256x256 PEs
])
def test_rtl_generate_systolic_takes_the_dataflow_of_arch(capsys, tmp_path, design, argv, module, dataflow):
    arch = str(_copy_of_fpga_small(tmp_path, ('["ws", "os"]', '["os", "ws"]'))) if design == "mine" else design
    code, _, err = run(capsys, "rtl", "generate", "systolic", "--arch", arch, *argv, "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / f"{module}.json").read_text())["parameters"]["dataflow"] == dataflow


def test_rtl_generate_systolic_refuses_a_dataflow_arch_does_not_list(capsys, tmp_path):
    mine = _copy_of_fpga_small(tmp_path, ('["ws", "os"]', '["ws"]'))
    for arch in ("tpu-v1", str(mine)):
        code, _, err = run(capsys, "rtl", "generate", "systolic", "--arch", arch, "--dataflow", "os",
                           "--out", str(tmp_path / "out"))
        assert (code, err) == (2, f"accel: error: --arch {arch} supports dataflows ws, not os\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "module", "nm"), [
    (["--arch", "sparse-nm", "--rows", "2", "--cols", "2"], "sparse_systolic_2_4_2x2", (2, 4)),
    (["--arch", "MINE"], "sparse_systolic_1_4_4x4", (1, 4)),  # the design's first pattern
    (["--arch", "MINE", "--nm", "2:8"], "sparse_systolic_2_8_4x4", (2, 8)),  # --nm still overrides
    (["--arch", "fpga-small", "--nm", "2:4"], "sparse_systolic_2_4_4x4", (2, 4)),  # a design listing none
])
def test_rtl_generate_sparse_systolic_takes_the_pattern_of_arch(capsys, tmp_path, argv, module, nm):
    mine = _copy_of_fpga_small(tmp_path, ('dataflows = ["ws", "os"]',
                                          'dataflows = ["ws", "os"]\nsparsity = ["1:4", "2:4"]'))
    argv = [str(mine) if a == "MINE" else a for a in argv]
    code, _, err = run(capsys, "rtl", "generate", "sparse_systolic", *argv, "--out", str(tmp_path / "out"))
    assert code == 0, err
    parameters = json.loads((tmp_path / "out" / f"{module}.json").read_text())["parameters"]
    assert (parameters["n"], parameters["m"]) == nm


def test_rtl_generate_sparse_systolic_refuses_an_arch_without_a_pattern(capsys, tmp_path):
    mine = _copy_of_fpga_small(tmp_path)
    for arch in ("fpga-small", str(mine)):
        code, _, err = run(capsys, "rtl", "generate", "sparse_systolic", "--arch", arch, "--out", str(tmp_path / "o"))
        assert (code, err) == (2, f"accel: error: --arch {arch} lists no N:M sparsity (array.sparsity); give the "
                                  "pattern with --nm\n")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["rtl", "generate", "npu"], ["fpga", "synth", "--family", "ecp5",
                                                                  "--design", "npu", "--no-pnr"]])
def test_npu_errors_name_the_arch_file_not_the_preset_it_was_copied_from(capsys, tmp_path, command):
    mine = _copy_of_fpga_small(tmp_path, ("channels = 1", "channels = 2"))
    code, _, err = run(capsys, *command, "--arch", str(mine), "--out", str(tmp_path / "out"))
    assert (code, err) == (2, f"accel: error: NPU for {str(mine)!r}: dma.channels must be 1, not 2\n")


def test_map_writes_the_plan_and_the_memory_map(capsys, tmp_path):
    plan_path, plot_path = tmp_path / "plan.json", tmp_path / "map.png"
    code, out, _ = run(capsys, "map", "--workload", "mobilenet_v2", "--scratchpad", "256KiB", "--allocator", "ilp",
                       "--out", str(plan_path), "--plot", str(plot_path), "--json")
    assert code == 0
    summary, plan = json.loads(out), json.loads(plan_path.read_text())
    for key in ("dram_bytes", "compulsory_dram_bytes", "solve_time_s", "objective", "bound", "gap"):
        assert key in plan and key in summary
    assert plan["scratchpad_bytes"] == 256 * 1024
    assert plan["compulsory_dram_bytes"] <= plan["dram_bytes"]
    # the ILP's tensor traffic is never worse than a baseline's on the same problem
    assert all(plan["tensor_dram_bytes"] <= b["tensor_dram_bytes"] for b in plan["baselines"].values())
    assert plan["dram_bytes"] >= plan["tensor_dram_bytes"]  # the plan's commands also re-read tiles
    assert len(plan["layers"]) == len(__import__("workloads").load("mobilenet_v2").layers)
    assert all(0 < layer["roofline_fraction"] <= 1 for layer in plan["layers"] if layer["dataflow"])
    assert plot_path.stat().st_size > 0


def test_map_with_a_baseline_has_no_solver_figures(capsys, tmp_path):
    code, out, _ = run(capsys, "map", "--workload", "resnet18", "--allocator", "greedy", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "heuristic"
    assert summary["objective"] is None and summary["bound"] is None and summary["gap"] is None


def test_run_with_an_allocator_keeps_tensors_on_chip_and_draws_the_memory_map(capsys, tmp_path):
    code, out, _ = run(capsys, "run", "--workload", "resnet18", "--allocator", "greedy", "--json")
    assert code == 0
    kept = json.loads(out)
    code, out, _ = run(capsys, "run", "--workload", "resnet18", "--json")
    plain = json.loads(out)
    assert kept["dram_bytes"] < plain["dram_bytes"]
    code, _, _ = run(capsys, "run", "--workload", "bert_base_layer", "--allocator", "ilp", "--out", str(tmp_path))
    assert code == 0 and (tmp_path / "memory_map.png").stat().st_size > 0


def test_run_refuses_an_allocator_with_a_fixed_mapping(capsys):
    code, _, err = run(capsys, "run", "--allocator", "ilp", "--dataflow", "ws")
    assert code == 2
    assert err.strip() == ("accel: error: --allocator ilp searches every layer's mapping; it cannot be combined "
                           "with --dataflow")


def test_map_and_run_take_the_joint_schedule(capsys):
    code, out, _ = run(capsys, "map", "--workload", "resnet18", "--scratchpad", "256KiB", "--schedule", "joint",
                       "--time-limit", "1", "--json")
    joint = json.loads(out)
    assert code == 0 and joint["schedule"] == "joint"
    code, out, _ = run(capsys, "map", "--workload", "resnet18", "--scratchpad", "256KiB", "--json")
    assert code == 0 and json.loads(out)["schedule"] == "candidates"
    code, out, _ = run(capsys, "run", "--workload", "alexnet", "--allocator", "greedy", "--schedule", "joint",
                       "--json")
    assert code == 0 and json.loads(out)["total_cycles"] > 0


def test_run_refuses_a_schedule_without_an_allocator(capsys):
    code, _, err = run(capsys, "run", "--schedule", "joint")
    assert code == 2 and "--schedule orders the layers for a scratchpad allocator" in err


def test_rtl_generate_writes_both_files_or_neither(capsys, tmp_path):
    """A manifest that cannot be written (a folder of its name is in the way) leaves no Verilog file
    behind, and an --out that is a file is refused before anything is built."""
    (tmp_path / "mac_pe.json").mkdir()
    code, _, err = run(capsys, "rtl", "generate", "pe", "--out", str(tmp_path))
    assert code == 2 and err == f"accel: error: {tmp_path / 'mac_pe.json'}: is a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mac_pe.json"]
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    code, _, err = run(capsys, "rtl", "generate", "pe", "--out", str(a_file))
    assert code == 2 and err == f"accel: error: --out {a_file}: is a file; expected a folder to write into\n"
    assert a_file.read_text() == "mine\n"
