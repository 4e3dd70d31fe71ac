"""rtl.fpga: FPGA flows: synthesis and place-and-route reports, board bitstreams, Vivado reports.

:mod:`rtl.fpga.synth` is the one synthesis module (family table, :class:`Resources` report,
:func:`synthesize` for any component, :func:`synthesize_unit` with place and route and a cache);
the device table it uses is :data:`accel.resources.DEVICES`. Import the heavy parts where they are
used; this package only re-exports names.
"""

from rtl.fpga.harness import SerialHarness, port_bits
from rtl.fpga.nextpnr import ClockFmax, CriticalPath, PnrReport, find_tool, parse_report, tool_version
from rtl.fpga.synth import (
                            DEVICES,
                            Device,
                            FpgaFamily,
                            FpgaReport,
                            Resources,
                            default_cache_dir,
                            dsp_demand,
                            synthesize,
                            synthesize_unit,
)
from rtl.fpga.vivado import ClockTiming, VivadoTiming, VivadoUtilization, parse_timing, parse_utilization

__all__ = [
    "SerialHarness", "port_bits",
    "ClockFmax", "CriticalPath", "PnrReport", "find_tool", "parse_report", "tool_version",
    "DEVICES", "Device", "FpgaFamily", "FpgaReport", "Resources", "default_cache_dir", "dsp_demand", "synthesize",
    "synthesize_unit",
    "ClockTiming", "VivadoTiming", "VivadoUtilization", "parse_timing", "parse_utilization",
]
