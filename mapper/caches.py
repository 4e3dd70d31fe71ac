"""Bounded memo tables for the mapping search (a sweep worker maps many designs in one process).

:class:`PriceTables` keeps one table of prices per key (the part of a design the prices depend on):
at most ``designs`` tables, the least recently used dropped first, and a table that reaches
``entries`` entries is emptied before it takes the next. Memory stays bounded however many designs
a process maps; :func:`mapper.search.clear_caches` empties every table and cache of the search.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["BoundedTable", "PriceTables"]


class BoundedTable(dict):
    """A dict that empties itself when a new key would make it hold more than ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Hashable, value: object) -> None:
        if len(self) >= self.limit and key not in self:
            self.clear()
        _dict_setitem(self, key, value)  # dict's own, without making a super() proxy per call


_dict_setitem = dict.__setitem__


class PriceTables:
    """At most ``designs`` :class:`BoundedTable` of ``entries`` each, by key, least recently used dropped."""

    def __init__(self, *, designs: int, entries: int) -> None:
        if designs < 1 or entries < 1:
            raise ValueError(f"PriceTables needs room for at least one design and entry, not {designs}, {entries}")
        self.designs, self.entries = designs, entries
        self._tables: OrderedDict[Hashable, BoundedTable] = OrderedDict()

    def table(self, key: Hashable) -> BoundedTable:
        """The table of ``key`` (a new, empty one if there is none)."""
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = BoundedTable(self.entries)
            while len(self._tables) > self.designs:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        return table

    def clear(self) -> None:
        self._tables.clear()

    def __len__(self) -> int:
        return len(self._tables)
