"""rtl: Amaranth components of the datapath, their Verilog, cocotb runs and FPGA synthesis.

FPGA synthesis lives in :mod:`rtl.fpga.synth` (``from rtl.fpga import synthesize, Resources``).

Import the heavy parts where they are used; this package only re-exports names.
"""

from rtl.cocotb_runner import CocotbCase, CocotbResult, CocotbTestFailure, run_cocotb
from rtl.fixed import shape_of
from rtl.pe import MacPE
from rtl.verilog import Manifest, Port, generate, read_manifest, write

__all__ = [
    "MacPE",
    "shape_of",
    "generate", "write", "read_manifest", "Manifest", "Port",
    "run_cocotb", "CocotbResult", "CocotbCase", "CocotbTestFailure",
]
