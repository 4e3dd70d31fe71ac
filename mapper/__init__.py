"""mapper: tiles and schedules DNN layers onto the hardware and emits the command program."""

from mapper.lower import lower
from mapper.plan import LayerMapping, Plan, Tile

__all__ = ["LayerMapping", "Plan", "Tile", "lower"]
