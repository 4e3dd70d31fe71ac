"""rtl: Amaranth components of the datapath, their Verilog, cocotb runs and FPGA synthesis.

Import the heavy parts where they are used; this package only re-exports names.
"""

from rtl.cocotb_runner import CocotbCase, CocotbResult, CocotbTestFailure, run_cocotb
from rtl.fixed import shape_of
from rtl.pe import MacPE
from rtl.synth import Family, ResourceReport, find_yosys, synthesize
from rtl.verilog import Manifest, Port, generate, read_manifest, write

__all__ = [
    "MacPE",
    "shape_of",
    "generate", "write", "read_manifest", "Manifest", "Port",
    "run_cocotb", "CocotbResult", "CocotbCase", "CocotbTestFailure",
    "synthesize", "ResourceReport", "Family", "find_yosys",
]
