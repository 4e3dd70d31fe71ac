"""mapper: tiles and schedules DNN layers onto the hardware and emits the command program."""

from mapper.lower import Depthwise, LoopOrder, lower
from mapper.plan import LayerMapping, Plan, Tile

__all__ = ["Depthwise", "LayerMapping", "LoopOrder", "Plan", "Tile", "lower"]
