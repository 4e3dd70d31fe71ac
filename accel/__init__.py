"""accel: the hardware description of a DNN accelerator and its datasheet."""

from accel.errors import AccelError, ConfigError, MappingError, ToolError, WorkloadError
from accel.formats import NumberFormat, Overflow, Rounding
from accel.hardware import DMA, DRAM, Accelerator, Dataflow, Memory, Sparsity, SystolicArray, VectorUnit

__all__ = [
    "AccelError", "ConfigError", "MappingError", "ToolError", "WorkloadError",
    "NumberFormat", "Overflow", "Rounding",
    "DMA", "DRAM", "Accelerator", "Dataflow", "Memory", "Sparsity", "SystolicArray", "VectorUnit",
]
