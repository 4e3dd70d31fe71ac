"""sim: the SimPy event simulator of the accelerator and the bit-exact functional model."""

from sim.engine import Result, TraceEvent, command_cycles, simulate
from sim.power import EnergyReport

__all__ = ["EnergyReport", "Result", "TraceEvent", "command_cycles", "simulate"]
