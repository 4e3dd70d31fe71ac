"""What every cocotb testbench here shares (imported by the bench modules inside the simulator)."""

from __future__ import annotations

__all__ = ["check_start_refuses_twice", "checked_parameters", "start_clock_and_reset"]


async def start_clock_and_reset(dut: object, *, period_ns: float, idle: dict[str, int], cycles: int = 2) -> None:
    """Start ``dut.clk``, drive the ``idle`` input values, hold ``rst`` for ``cycles`` rising edges and
    release it on the following falling edge."""
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge

    Clock(dut.clk, period_ns, unit="ns").start()  # type: ignore[attr-defined]
    for name, value in idle.items():
        getattr(dut, name).value = value
    dut.rst.value = 1  # type: ignore[attr-defined]
    for _ in range(cycles):
        await RisingEdge(dut.clk)  # type: ignore[attr-defined]
    await FallingEdge(dut.clk)  # type: ignore[attr-defined]
    dut.rst.value = 0  # type: ignore[attr-defined]


def checked_parameters() -> dict:
    """The bench's parameters (one dict shared by build and test), after checking that the Verilog
    under test was built with the same ones (its manifest)."""
    from rtl.cocotb_runner import testbench_manifest, testbench_parameters

    parameters = testbench_parameters()
    manifest = testbench_manifest()
    built = {key: parameters[key] for key in manifest.parameters}
    if dict(manifest.parameters) != built:
        raise RuntimeError(f"Verilog was built with {manifest.parameters}, but the testbench was given {parameters}")
    return parameters


async def check_start_refuses_twice(tb: object) -> None:
    """A testbench owns its clock: a second ``start()`` is a bug in the test, and must say so."""
    await tb.start()  # type: ignore[attr-defined]
    try:
        await tb.start()  # type: ignore[attr-defined]
    except RuntimeError as error:
        assert "only once" in str(error), f"unexpected message: {error}"
    else:
        raise AssertionError("a second start() must raise RuntimeError")
