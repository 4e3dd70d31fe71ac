"""Python's cyclic garbage collector paused around work that builds large structures without cycles.

CPython's collector runs after every 700 net allocations of container objects, a middle-generation
collection after every 10 of those, and a full one (the whole heap: numpy's, pandas' and SimPy's
modules included) when enough objects have survived them. Mapping a model and simulating it build
tens of thousands of long-lived objects (commands, memo entries, tiles, trace arrays' owners) and
almost no reference cycles, so those collections traverse the growing heap again and again and free
nothing: about a sixth of ResNet-50's map + simulate CPU time on Gemmini, a full collection of ~0.05 s
of it. :func:`gc_paused` turns the collector off for the duration of a ``with`` block or a call it
decorates and back on after, if it was on when the block began (nested and already-paused uses leave
it as they found it), as Mercurial's ``util.nogc`` does while it builds its indexes.

When the block ends normally having left many objects in the young generation (more than
:data:`PROMOTE_AT`), they are moved to the oldest generation at once (``gc.freeze()`` then
``gc.unfreeze()``: two list splices, no traversal) instead of being traversed by the next young
collection and again by the middle one: ResNet-50's mapping leaves ~55 K, and that first young
collection took 8-15 ms, 3-5 % of the mapping. They are what a generational collector calls
long-lived by construction (the plan, the memo tables). The project's code makes no reference cycles
there (``tests/test_lower_and_simulate.py`` checks it on the zoo), so nothing collectable waits
longer; cycles the caller made just before the block, still young, are promoted with them and wait
for the next full collection. A caller that froze objects itself (``gc.freeze()``, as pre-forking
servers do) keeps them frozen: then nothing is promoted. Reference counting frees everything else as
usual. It changes no result, only when the collector runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PROMOTE_AT", "gc_paused"]

#: Young objects left by a paused block above which they are promoted rather than collected (a
#: young collection of this many takes about a millisecond).
PROMOTE_AT = 5_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector while the block (or decorated call) runs; re-enable it
    after only if this call disabled it, promoting what the block left young when that is much."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        # (not after a failed block: what it made is mostly garbage, for the young collection to find;
        # nor when the caller froze objects itself: unfreezing would undo its freeze)
        if gc.get_count()[0] > PROMOTE_AT and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
    finally:
        gc.enable()
