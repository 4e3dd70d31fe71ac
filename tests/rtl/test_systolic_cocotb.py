"""SystolicArray's Verilog on Icarus through cocotb: bit-exact against sim.numerics and
cycle-exact against accel.timing, for every size and dataflow of the matrix.

Each design is one parameters dict: the pytest side builds the array from it and hands the same
dict to the testbench (``systolic_tb.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.formats import NumberFormat, Overflow
from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.systolic import SystolicArray

TESTBENCH = Path(__file__).with_name("systolic_tb.py")
SCENARIOS = {"random_folds_back_to_back", "extreme_operands", "stalls_on_both_sides", "start_refuses_to_run_twice"}


def _design(rows: int, cols: int, dataflow: str, *, acc_format: str = "int32", overflow: str = "wrap",
            seed: int = 1, weight_buffers: int = 1) -> dict[str, Any]:
    design = {"rows": rows, "cols": cols, "dataflow": dataflow, "a_format": "int8", "b_format": "int8",
              "acc_format": acc_format, "overflow": overflow, "seed": seed}
    return design if weight_buffers == 1 else {**design, "weight_buffers": weight_buffers}


DESIGNS: dict[str, dict[str, Any]] = {
    # narrow accumulators, so that the extreme operands (2 x 16384 per WS column, 6 or 12 x 16384
    # per OS output) saturate or wrap
    "2x2_ws_int16_saturate": _design(2, 2, "ws", acc_format="int16", overflow="saturate", seed=2),
    "2x2_os_int17_wrap": _design(2, 2, "os", acc_format="int17", overflow="wrap", seed=3),
    "4x4_ws": _design(4, 4, "ws", seed=4),
    "4x4_os": _design(4, 4, "os", seed=5),
    "8x8_ws": _design(8, 8, "ws", seed=6),
    "8x8_os": _design(8, 8, "os", seed=7),
    "4x8_ws": _design(4, 8, "ws", seed=8),
    "4x8_os_int18_saturate": _design(4, 8, "os", acc_format="int18", overflow="saturate", seed=9),
    # double-buffered weights: folds overlap; streams shorter and longer than R + C (weight stalls or none)
    "2x2_ws_double_int16_saturate": _design(2, 2, "ws", acc_format="int16", overflow="saturate", seed=10,
                                            weight_buffers=2),
    "4x4_ws_double": _design(4, 4, "ws", seed=11, weight_buffers=2),
    "8x8_ws_double": _design(8, 8, "ws", seed=12, weight_buffers=2),
    "4x8_ws_double": _design(4, 8, "ws", seed=13, weight_buffers=2),
}


def build_array(parameters: dict[str, Any]) -> SystolicArray:
    """The array a parameters dict describes (the testbench reads the same dict)."""
    return SystolicArray(
        parameters["rows"], parameters["cols"], parameters["dataflow"],
        a_format=NumberFormat.parse(parameters["a_format"]), b_format=NumberFormat.parse(parameters["b_format"]),
        acc_format=NumberFormat.parse(parameters["acc_format"], overflow=Overflow(parameters["overflow"])),
        weight_buffers=parameters.get("weight_buffers", 1),
    )


@pytest.mark.rtl
@pytest.mark.parametrize("design", DESIGNS)
def test_systolic_array_matches_numerics_and_timing_on_icarus(design: str, tmp_path: Path) -> None:
    parameters = DESIGNS[design]
    result = run_cocotb(toplevel="systolic", component=build_array(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_value_fails_the_systolic_test(tmp_path: Path) -> None:
    """Off-by-one in the reference must turn into a failing cocotb test, not a silent pass."""
    parameters = {**DESIGNS["4x4_ws"], "reference_offset": 1}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="systolic", component=build_array(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="random_folds_back_to_back")
    result = failure.value.result
    assert [case.name for case in result.failed] == ["random_folds_back_to_back"]
    assert "outputs differed from sim.numerics.systolic_tile" in result.failed[0].message
