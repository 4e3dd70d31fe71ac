"""The Requantizer's Verilog on Icarus through cocotb, bit-exact against sim.numerics.requantize.

Each mode is one design (4 lanes, like the fpga-small vector unit); ``count`` beats of 4 lanes
give 10,400 random requantizations per mode, plus the rounding edge cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.formats import NumberFormat
from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.requant import Requantizer

TESTBENCH = Path(__file__).with_name("requant_tb.py")
SCENARIOS = {"random_vectors", "rounding_edge_cases", "burst_cycles_match_the_vector_datasheet", "backpressure",
             "start_refuses_to_run_twice"}

DESIGNS: dict[str, dict[str, Any]] = {
    "double_int8": {"out_format": "int8", "mode": "double", "lanes": 4, "seed": 31, "count": 2600},
    "single_int8": {"out_format": "int8", "mode": "single", "lanes": 4, "seed": 32, "count": 2600},
}


def build_requantizer(parameters: dict[str, Any]) -> Requantizer:
    return Requantizer(out_format=NumberFormat.parse(parameters["out_format"]), mode=parameters["mode"],
                       lanes=parameters["lanes"])


@pytest.mark.rtl
@pytest.mark.parametrize("design", DESIGNS)
def test_requantizer_matches_numerics_on_icarus(design: str, tmp_path: Path) -> None:
    parameters = DESIGNS[design]
    result = run_cocotb(toplevel="requant", component=build_requantizer(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_value_fails_the_requant_test(tmp_path: Path) -> None:
    parameters = {**DESIGNS["double_int8"], "reference_offset": 1}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="requant", component=build_requantizer(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="rounding_edge_cases")
    assert "outputs differed from sim.numerics.requantize" in failure.value.result.failed[0].message
