"""What the NPU's program benches share on the pytest side: quantized graphs, the host table's words
and one run of npu_tb.py over a dict of programs (image, DRAM, table), every case found by name."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from accel.encoding import RequantTable, decode_program, encode_requant_table, encode_vector_table
from accel.formats import Requantization
from accel.hardware import Accelerator
from workloads.builder import GraphBuilder
from workloads.graph import Graph

TESTBENCH = Path(__file__).with_name("npu_tb.py")


def quantized_graph(builder: GraphBuilder, *, per_channel: bool = False) -> tuple[Graph, dict[str, np.ndarray]]:
    """(graph, input codes of its device part) of ``builder``'s graph quantized with int8 activations
    (``per_channel``: a weight scale per output channel)."""
    from sim.reference import run_quantized
    from workloads.host import split_host
    from workloads.onnx_export import export_onnx
    from workloads.onnx_import import load_onnx
    from workloads.quantize import calibration_inputs, quantize_model

    logging.disable(logging.WARNING)
    try:
        model = export_onnx(builder.build(), seed=3)
        quantized = quantize_model(model, calibration_inputs(model, count=2, seed=1), activations="int8",
                                   per_channel=per_channel)
    finally:
        logging.disable(logging.NOTSET)
    graph = load_onnx(quantized)
    codes = run_quantized(graph, calibration_inputs(quantized, count=1, seed=9)[0], intermediates=True,
                          requant=Requantization.TFLITE_DOUBLE)
    return graph, {t.name: codes[t.name] for t in split_host(graph).device.inputs}


def table_words(table: RequantTable) -> dict[str, list[int]]:
    """``table`` as npu_tb.py writes it through ``rq_*``: the step, channel and vector-step words."""
    steps, channels = encode_requant_table(table)
    return {"steps": list(steps), "channels": list(channels), "vector": list(encode_vector_table(table))}


def run_programs(arch: Accelerator, programs: dict[str, dict], build_dir: Path, *, requant_channels: int,
                 activation_latency: int) -> dict:
    """Run every program of ``programs`` on one NPU of ``arch`` sized for the largest (commands, image
    words) on Icarus; the cocotb cases by program name (each case's ``passed`` and ``message``)."""
    from rtl.cocotb_runner import run_cocotb
    from rtl.npu import NPU

    words = max(len(p["image"]) // 8 for p in programs.values())
    size = max(len(decode_program(bytes.fromhex(p["image"]))) for p in programs.values())
    npu = NPU(arch, max_commands=size, program_words=words, requant_channels=requant_channels)
    parameters = {"rows": arch.array.rows, "cols": arch.array.cols, "max_commands": size, "program_words": words,
                  "activation_latency": activation_latency, "programs": programs,
                  "scratchpad_bytes": arch.scratchpad.size_bytes}
    result = run_cocotb(toplevel="npu", component=npu, test_module=TESTBENCH, build_dir=build_dir,
                        parameters=parameters, check=False)
    by_name = {case.name: case for case in result.cases if case.name in programs}
    assert set(by_name) == {*programs}, result.summary()
    return by_name
