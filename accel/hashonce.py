"""Frozen dataclasses that hash their fields once per object.

A frozen dataclass's generated ``__hash__`` hashes the tuple of all of its fields on every call, and
a field that is itself a dataclass hashes its own fields again: a design
(:class:`accel.hardware.Accelerator`, a dozen nested descriptions and tables) costs about 10 us to
hash, and the mapper's memo tables hash designs and layer operands hundreds of times per model.
:func:`hash_once` makes a frozen dataclass compute its hash on first use and keep it as an attribute of
the object: the object is immutable, so the hash never changes, and equal objects still hash equal
(each computes the same value from the same fields). The kept hash is left out of the pickled state,
since a string's hash differs between processes (``PYTHONHASHSEED``): an object sent to another
process (a sweep's worker) computes its own there.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["hash_once"]

T = TypeVar("T", bound=type)

_KEY = "_hash_once"


def hash_once(cls: T) -> T:
    """Give the frozen dataclass ``cls`` (one with a ``__dict__``) a ``__hash__`` that computes its
    generated hash once per object, and a ``__getstate__`` that pickles the object without it.

    The hash is kept as an attribute (set with ``object.__setattr__``, as a frozen dataclass's
    ``__post_init__`` sets its own), never through the object's ``__dict__``: reading ``__dict__``
    makes CPython give up the object's inline attribute values, and every later attribute read of
    it gets slower."""
    fields_hash = cls.__dict__.get("__hash__")
    if fields_hash is None or "__slots__" in cls.__dict__ or "__getstate__" in cls.__dict__:
        raise TypeError(f"hash_once needs a hashable dataclass with a __dict__ and no __getstate__ "
                        f"of its own, not {cls.__qualname__}")

    def __hash__(self: Any) -> int:
        value = self._hash_once
        if value is None:
            value = fields_hash(self)
            object.__setattr__(self, _KEY, value)
        return value

    def __getstate__(self: Any) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop(_KEY, None)
        return state

    __hash__.__doc__ = f"The hash of the fields of a {cls.__qualname__}, computed on first use."
    cls.__hash__ = __hash__  # type: ignore[assignment]
    cls.__getstate__ = __getstate__  # type: ignore[attr-defined]
    setattr(cls, _KEY, None)  # not computed yet (a class attribute, not a field)
    return cls
