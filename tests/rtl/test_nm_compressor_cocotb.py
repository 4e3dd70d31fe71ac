"""NMCompressor's Verilog on Icarus through cocotb: bit-exact against sim.numerics.nm_compress.

Each design is one parameters dict: the pytest side builds the compressor from it and hands the
same dict to the testbench (``nm_compressor_tb.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.formats import NumberFormat
from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.nm_compressor import NMCompressor

TESTBENCH = Path(__file__).with_name("nm_compressor_tb.py")
SCENARIOS = {"random_groups_every_cycle", "every_order_and_tie_of_a_small_alphabet", "stalls_on_both_sides",
             "start_refuses_to_run_twice"}

DESIGNS: dict[str, dict[str, Any]] = {
    "2_4_int8_x4": {"n": 2, "m": 4, "value_format": "int8", "lanes": 4, "seed": 1},
    "1_4_int8": {"n": 1, "m": 4, "value_format": "int8", "lanes": 1, "seed": 2},
    "2_8_uint8_x2": {"n": 2, "m": 8, "value_format": "uint8", "lanes": 2, "seed": 3},
}


def build_compressor(parameters: dict[str, Any]) -> NMCompressor:
    """The compressor a parameters dict describes (the testbench reads the same dict)."""
    return NMCompressor(parameters["n"], parameters["m"], value_format=NumberFormat.parse(parameters["value_format"]),
                        lanes=parameters["lanes"])


@pytest.mark.rtl
@pytest.mark.parametrize("design", DESIGNS)
def test_nm_compressor_matches_numerics_on_icarus(design: str, tmp_path: Path) -> None:
    parameters = DESIGNS[design]
    result = run_cocotb(toplevel="nm_compressor", component=build_compressor(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_word_fails_the_compressor_test(tmp_path: Path) -> None:
    """Off-by-one in the reference must turn into a failing cocotb test, not a silent pass."""
    parameters = {**DESIGNS["1_4_int8"], "reference_offset": 1, "random_groups": 20}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="nm_compressor", component=build_compressor(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="random_groups_every_cycle")
    result = failure.value.result
    assert [case.name for case in result.failed] == ["random_groups_every_cycle"]
    assert "compressed words differed from sim.numerics.nm_compress" in result.failed[0].message
