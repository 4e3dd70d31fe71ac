"""Python's cyclic garbage collector paused around work that builds large structures without cycles.

CPython's collector runs after every 700 net allocations of container objects, a middle-generation
collection after every 10 of those, and a full one (the whole heap: numpy's, pandas' and SimPy's
modules included) when enough objects have survived them. Mapping a model and simulating it build
tens of thousands of long-lived objects (commands, memo entries, tiles, trace arrays' owners) and
almost no reference cycles, so those collections traverse the growing heap again and again and free
nothing: about a sixth of ResNet-50's map + simulate CPU time on Gemmini, a full collection of ~0.05 s
of it. :func:`gc_paused` turns the collector off for the duration of a ``with`` block or a call it
decorates and back on after, if it was on when the block began (nested and already-paused uses leave
it as they found it), as Mercurial's ``util.nogc`` does while it builds its indexes. Objects in cycles
made meanwhile are freed by the first collection after it; reference counting frees the rest as usual.
It changes no result, only when the collector runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector while the block (or decorated call) runs; re-enable it
    after only if this call disabled it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
