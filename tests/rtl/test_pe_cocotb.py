"""MacPE's generated Verilog on Icarus Verilog through cocotb, bit-exact against sim.numerics.

Each design is one parameters dict: the pytest side builds the component from it and hands the
same dict to the cocotb testbench (``pe_tb.py``), which reads its formats and seed from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.errors import ToolError
from accel.formats import NumberFormat, Overflow
from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.pe import MacPE

TESTBENCH = Path(__file__).with_name("pe_tb.py")
SCENARIOS = {"random_operands", "extreme_operands", "accumulator_overflow", "clear_restarts",
             "start_refuses_to_run_twice"}

DESIGNS: dict[str, dict[str, Any]] = {
    # the default PE; its overflow scenario runs 2**17 largest products to wrap int32 (about 20 s)
    "int8_int8_int32_wrap": {"a_format": "int8", "b_format": "int8", "acc_format": "int32",
                             "overflow": "wrap", "seed": 20240611, "count": 3000},
    "int8_int8_int20_saturate": {"a_format": "int8", "b_format": "int8", "acc_format": "int20",
                                 "overflow": "saturate", "seed": 7, "count": 3000},
    "uint8_int8_int18_wrap": {"a_format": "uint8", "b_format": "int8", "acc_format": "int18",
                              "overflow": "wrap", "seed": 99, "count": 2000},
}


def build_pe(parameters: dict[str, Any]) -> MacPE:
    """The PE a parameters dict describes (the testbench reads the same dict)."""
    return MacPE(
        a_format=NumberFormat.parse(parameters["a_format"]),
        b_format=NumberFormat.parse(parameters["b_format"]),
        acc_format=NumberFormat.parse(parameters["acc_format"], overflow=Overflow(parameters["overflow"])),
    )


@pytest.mark.rtl
@pytest.mark.parametrize("design", DESIGNS)
def test_pe_matches_numerics_on_icarus(design: str, tmp_path: Path) -> None:
    parameters = DESIGNS[design]
    result = run_cocotb(toplevel="mac_pe", component=build_pe(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_value_fails_the_cocotb_test(tmp_path: Path) -> None:
    """Off-by-one in the reference must turn into a failing test, not a silent pass."""
    parameters = {**DESIGNS["int8_int8_int20_saturate"], "reference_offset": 1}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="mac_pe", component=build_pe(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="clear_restarts")
    result = failure.value.result
    assert [case.name for case in result.failed] == ["clear_restarts"]
    assert "acc differed from sim.numerics.mac" in result.failed[0].message
    assert "FAIL clear_restarts" in str(failure.value)


def test_missing_icarus_is_a_tool_error_with_an_install_hint(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no iverilog, no vvp
    with pytest.raises(ToolError, match=r"^Icarus Verilog's 'iverilog' is not on PATH: .*apt-get install iverilog"):
        run_cocotb(toplevel="mac_pe", verilog_sources=[tmp_path / "mac_pe.v"], test_module=TESTBENCH,
                   build_dir=tmp_path)
