"""Fast constructors of commands, for the emitter that writes hundreds of thousands of them.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (which looks the
name up on the class first); a command has up to twenty fields, so making one costs several
microseconds, and emission makes little else. :func:`maker` and :func:`builder` return functions,
generated once per command class from its own fields, that make the same object as an instance of
the class's *twin* (:func:`_twin`: a subclass adding no slots, whose ``__setattr__`` is
``object``'s), set each slot by plain attribute stores (the interpreter's specialised slot store),
then make it an instance of the class itself (``__class__`` assignment, allowed since the two have
the same layout): the result is the class's own instance, frozen, with the same fields, so equality,
hashing and repr are the class's. ``maker(kind)(**fields) == kind(**fields)`` (the same fields, defaults
and keyword-only signature), ``builder(kind)(values)`` from every field's value in field order, and
``rebuilder(kind, a, b)(values, id, layer, deps, x, y)`` from ``values`` but for the id, layer and
deps and fields ``a`` and ``b`` (when not 0), given apart (a segment's copies: mapper.emit), and
``relocator(kind, a, b, moved)(values, id, layer, deps, x, y, bases, slots)`` the same with the
``j``-th field of ``moved`` set to its value plus ``bases[slots[j]]`` (a template's copies, their
on-chip addresses relocated to the halves: mapper.replay; one per class, the halves per command).
None validates more than the dataclass does (it validates nothing).

:func:`value_maker` does the same for the frozen dataclasses (with a ``__dict__``, no
``__post_init__``) that a schedule yields by the thousand (:mod:`mapper.schedules`' transfers,
computes and steps): ``value_maker(kind)(*args, **fields) == kind(*args, **fields)``, the same
signature, the instance's ``__dict__`` set at once instead of field by field through
``object.__setattr__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from operator import attrgetter

from accel.commands import Command

__all__ = ["builder", "field_getter", "field_index", "maker", "rebuilder", "relocator", "value_maker"]


@cache
def maker(kind: type[Command]) -> Callable[..., Command]:
    """``kind``'s keyword constructor, about twice as fast as ``kind(...)``."""
    scope: dict[str, object] = {"new": object.__new__, "kind": kind, "twin": _twin(kind)}
    params, body = [], ["    c = new(twin)"]
    for i, f in enumerate(dataclasses.fields(kind)):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{kind.__name__}.{f.name} has a default factory")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"default{i}"] = f.default
            params.append(f"{f.name}=default{i}")
        body.append(f"    c.{f.name} = {f.name}")
    source = f"def make(*, {', '.join(params)}):\n" + "\n".join(body) + "\n    c.__class__ = kind\n    return c"
    exec(source, scope)  # noqa: S102 - generated from the dataclass's own field names
    return scope["make"]  # type: ignore[return-value]


@cache
def _twin(kind: type[Command]) -> type:
    """A subclass of ``kind`` (a frozen dataclass with slots) that adds no slots and whose attributes
    can be set (``object.__setattr__``): an instance made as one and filled takes ``kind`` as its class
    (``__class__`` assignment checks that the layouts match). Used only inside the makers."""
    if "__slots__" not in vars(kind) or kind.__dictoffset__:
        raise TypeError(f"{kind.__name__} is not a dataclass with slots")
    return type(f"_{kind.__name__}Twin", (kind,), {"__slots__": (), "__setattr__": object.__setattr__,
                                                    "__delattr__": object.__delattr__,
                                                    "__module__": __name__})


def _field_names(kind: type[Command]) -> list[str]:
    """``kind``'s field names in order, checked to begin with ``id``, ``layer`` and ``deps``."""
    names = [f.name for f in dataclasses.fields(kind)]
    if names[:3] != ["id", "layer", "deps"]:
        raise TypeError(f"{kind.__name__}'s first fields are {names[:3]}, not id, layer, deps")
    return names


def _setter_function(kind: type[Command], params: str, given: dict[int, str]) -> Callable[..., Command]:
    """A function of ``params`` that makes a ``kind`` through its twin (as :func:`maker`): field ``i``
    from the expression ``given[i]`` where given, else from ``v[i]``."""
    scope: dict[str, object] = {"new": object.__new__, "kind": kind, "twin": _twin(kind)}
    lines = [f"def make({params}):", "    c = new(twin)"]
    for i, name in enumerate(_field_names(kind)):
        lines.append(f"    c.{name} = {given.get(i, f'v[{i}]')}")
    lines.extend(["    c.__class__ = kind", "    return c"])
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the dataclass's own field names
    return scope["make"]  # type: ignore[return-value]


@cache
def builder(kind: type[Command]) -> tuple[Callable[[list], Command], dict[str, int]]:
    """A function that makes a ``kind`` from its fields' values in field order, and each field's
    index (``id``, ``layer`` and ``deps`` are 0, 1 and 2 in every command class)."""
    names = _field_names(kind)
    return _setter_function(kind, "v", {}), {name: i for i, name in enumerate(names)}


@cache
def rebuilder(kind: type[Command], a: int = 0, b: int = 0) -> Callable[..., Command]:
    """A function ``(values, id, layer, deps, x, y)`` that makes a ``kind`` from ``values`` (every
    field's, in field order) but for its id, layer and deps (fields 0, 1 and 2) and fields ``a``
    and ``b``, which it sets to ``x`` and ``y`` (0: no field; the argument is ignored)."""
    if a in (1, 2) or b in (1, 2) or (a and a == b):
        raise ValueError(f"fields {a} and {b} of {kind.__name__} cannot be given apart")
    given = {0: "ident", 1: "layer", 2: "deps"}
    given.update({i: arg for i, arg in ((a, "x"), (b, "y")) if i})
    return _setter_function(kind, "v, ident, layer, deps, x, y", given)


@cache
def relocator(kind: type[Command], a: int = 0, b: int = 0, moved: tuple[int, ...] = ()) -> Callable[..., Command]:
    """:func:`rebuilder` ``(values, id, layer, deps, x, y, bases, slots)`` that also sets the ``j``-th
    field of ``moved`` (field indices) to its value plus ``bases[slots[j]]``."""
    if a in (1, 2) or b in (1, 2) or (a and a == b):
        raise ValueError(f"fields {a} and {b} of {kind.__name__} cannot be given apart")
    given = {0: "ident", 1: "layer", 2: "deps"}
    given.update({i: arg for i, arg in ((a, "x"), (b, "y")) if i})
    for j, i in enumerate(moved):
        if i in given:
            raise ValueError(f"field {i} of {kind.__name__} is given apart and moved")
        given[i] = f"v[{i}] + bases[slots[{j}]]"
    return _setter_function(kind, "v, ident, layer, deps, x, y, bases, slots", given)


@cache
def field_getter(kind: type[Command]) -> attrgetter:
    """A getter of every field of ``kind``, in field order (a tuple of their values)."""
    return attrgetter(*_field_names(kind))


@cache
def field_index(kind: type[Command]) -> dict[str, int]:
    """Each field's index in ``kind``'s fields (as :func:`builder` gives it, without making a builder)."""
    return {name: i for i, name in enumerate(_field_names(kind))}


@cache
def value_maker(kind: type) -> Callable[..., object]:
    """``kind``'s constructor (a frozen dataclass with a ``__dict__`` and no ``__post_init__``, every
    field set by ``__init__`` without a default factory), about twice as fast as ``kind(...)``."""
    if not dataclasses.is_dataclass(kind) or hasattr(kind, "__slots__") or hasattr(kind, "__post_init__"):
        raise TypeError(f"{kind.__name__} is not a dataclass with a __dict__ and no __post_init__")
    scope: dict[str, object] = {"new": object.__new__, "kind": kind, "set_dict": object.__setattr__}
    positional, keyword, names = [], [], []
    for i, f in enumerate(dataclasses.fields(kind)):
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{kind.__name__}.{f.name} is not set by __init__ from an argument or a default")
        param = f.name
        if f.default is not dataclasses.MISSING:
            scope[f"default{i}"] = f.default
            param = f"{f.name}=default{i}"
        (keyword if f.kw_only else positional).append(param)
        names.append(f.name)
    params = ", ".join([*positional, *(["*", *keyword] if keyword else [])])
    fields = ", ".join(f"{name!r}: {name}" for name in names)
    source = f"def make({params}):\n    c = new(kind)\n    set_dict(c, '__dict__', {{{fields}}})\n    return c"
    exec(source, scope)  # noqa: S102 - generated from the dataclass's own field names
    return scope["make"]  # type: ignore[return-value]
