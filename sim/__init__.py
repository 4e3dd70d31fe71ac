"""sim: the SimPy event simulator of the accelerator and the bit-exact functional model."""

from sim.engine import Result, TraceEvent, command_cycles, simulate

__all__ = ["Result", "TraceEvent", "command_cycles", "simulate"]
