"""A ``sync`` clock domain from an ECP5 PLL (``EHXPLLL``), for designs slower than their board's clock.

:func:`ecp5_pll_params` chooses the PLL's dividers as prjtrellis' ``ecppll`` does: the input divider,
feedback divider and output divider whose output frequency is closest to the one asked for, with the
phase-frequency detector between 3.125 and 400 MHz and the VCO between 400 and 800 MHz (the closest
VCO to 600 MHz among equally good choices). :class:`ECP5PLLDomain` puts that PLL on the board's clock
input and drives the ``sync`` domain from its primary output, held in reset (the global set/reset, as
amaranth's ECP5 platform does for its own ``sync`` domain) until two cycles of the new clock after
the PLL locks; nextpnr times the domain at the PLL's
output frequency, which it derives from the board clock's constraint and the dividers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

from accel.errors import ConfigError

__all__ = ["PLLParams", "ecp5_pll_params", "ECP5PLLDomain"]

_PFD_MHZ = (3.125, 400.0)
_VCO_MHZ = (400.0, 800.0)


@dataclass(frozen=True)
class PLLParams:
    """The dividers of an ECP5 PLL and the frequencies they give (MHz)."""

    input_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def vco_mhz(self) -> float:
        return self.input_mhz / self.clki_div * self.clkfb_div * self.clkop_div

    @property
    def output_mhz(self) -> float:
        return self.input_mhz / self.clki_div * self.clkfb_div


def ecp5_pll_params(input_mhz: float, output_mhz: float) -> PLLParams:
    """The ECP5 PLL dividers whose output is closest to ``output_mhz`` from ``input_mhz``.

    Raises :class:`ConfigError` if no divider setting is within 1 % of ``output_mhz``.
    """
    best: tuple[float, float, PLLParams] | None = None
    for clki in range(1, 129):
        pfd = input_mhz / clki
        if not _PFD_MHZ[0] <= pfd <= _PFD_MHZ[1]:
            continue
        for fb in range(1, 81):
            for op in range(1, 129):
                vco = pfd * fb * op
                if not _VCO_MHZ[0] <= vco <= _VCO_MHZ[1]:
                    continue
                key = (abs(pfd * fb - output_mhz), abs(vco - 600.0))
                if best is None or key < best[:2]:
                    best = (*key, PLLParams(input_mhz, clki, fb, op))
    if best is None or best[0] > 0.01 * output_mhz:
        raise ConfigError(f"An ECP5 PLL cannot make {output_mhz:g} MHz from {input_mhz:g} MHz "
                          f"(closest: {best[2].output_mhz:g} MHz)" if best else
                          f"An ECP5 PLL cannot take a {input_mhz:g} MHz input")
    return best[2]


class ECP5PLLDomain(Elaboratable):
    """Drives the ``sync`` domain (which the parent module defines, reset-less: ``m.domains.sync =
    ClockDomain("sync", reset_less=True)``) at ``output_mhz`` from an ``EHXPLLL`` on the platform's default clock.

    ``frequency_hz`` is the frequency the PLL makes (the closest to ``output_mhz`` it can); designs
    derive their clock-dependent constants (a UART divisor) from it.
    """

    def __init__(self, platform: Any, output_mhz: float) -> None:
        self.input_mhz = platform.default_clk_frequency / 1e6
        self.params = ecp5_pll_params(self.input_mhz, output_mhz)
        self.frequency_hz = self.params.output_mhz * 1e6

    def elaborate(self, platform: Any) -> Module:
        p = self.params
        m = Module()
        m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        clk_in = clk_buf.i
        clk_out, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.input_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{p.output_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=(p.clkop_div - 1) // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=clk_out, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk_out)
        # held in reset through the global set/reset until two cycles after the PLL locks, as the
        # platform's own sync domain is (reset-less: with a reset synchronizer driving the domain's
        # reset instead, the NPU host link took about 2,800 logic LUTs more)
        gsr0, gsr1 = Signal(name="gsr0"), Signal(name="gsr1")
        m.submodules += [
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk_out, i_D=locked, o_Q=gsr0),
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk_out, i_D=gsr0, o_Q=gsr1),
            Instance("SGSR", i_CLK=clk_out, i_GSR=gsr1),
        ]
        # no clock constraint of its own: nextpnr derives the output's from the input's and the
        # dividers ("Derived frequency constraint of 12.5 MHz for net link.clk"), and flattening
        # renames the net a constraint here would name
        return m
