"""Amaranth's RTLIL text as cells and signal bits, and the cells yosys' ``opt_merge`` leaves.

Amaranth writes one cell per use of an expression: a value used three times in a design (``product``
in ``high = Mux(product < 0, product + k, product) >> 31``) is three identical cells with identical
inputs, and every cell computed from them is repeated as often. Synthesis does not keep the copies:
``synth_ecp5`` and ``synth_ice40`` run ``opt`` (whose ``opt_merge`` replaces a cell by an earlier one of
the same type, parameters and input signals, until no two are alike) before ``wreduce``, ``share``
and the ``mul2dsp`` techmap that tiles multipliers into DSP blocks. :func:`merged_cells` applies that
rule to one module of the RTLIL text, as ``opt_merge`` does (yosys ``passes/opt/opt_merge.cc``):

* cells of yosys' internal types (``$...``) merge when their type, parameters and inputs (every port
  but the outputs, as bits after merging their drivers) are equal; the two inputs of ``$and``,
  ``$or``, ``$xor``, ``$xnor``, ``$add``, ``$mul``, ``$logic_and`` and ``$logic_or`` are unordered;
* flip-flops merge the same way (their data, clock, enable and reset inputs); memories (``$mem*``,
  ``$memrd*``, ``$memwr*``, ``$meminit*``), instances of modules and what ``process`` blocks drive are
  never merged (they are distinct signals).

So the merge is exact for the combinational copies Amaranth makes and conservative elsewhere: what
yosys merges besides (after ``proc`` turns processes into cells, or across a ``flatten``ed module
boundary) only merges more. Its ``share`` pass (one multiplier for products used in exclusive
branches of a mux) is not modelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Cell", "merged_cells", "modules"]

_MODULE = re.compile(r"^module (\S+)\n(.*?)^end\n", re.MULTILINE | re.DOTALL)
_CELL = re.compile(r"^\s*cell (\S+) (\S+)\n(.*?)^\s*end\n", re.MULTILINE | re.DOTALL)
_WIRE = re.compile(r"^\s*wire (.*?)([$\\]\S+)\s*$", re.MULTILINE)
_CONNECT = re.compile(r"^  connect (.+)$", re.MULTILINE)  # module level (two spaces: not a cell's)
_TOKEN = re.compile(r"\{|\}|[$\\][^\s\[\]{}]+(?: \[\d+(?::\d+)?\])?|\d+'[01xzm-]*|-?\d+")
_COMMUTATIVE = frozenset({"$and", "$or", "$xor", "$xnor", "$add", "$mul", "$logic_and", "$logic_or"})
_OUTPUTS = frozenset({"Y", "Q", "DATA", "RD_DATA", "X", "CO"})  # output ports of yosys' internal cells

Bit = tuple  # ("w", wire, i): a wire's bit; ("c", "0"): a constant; ("o", cell, port, i): a cell's output


@dataclass(frozen=True)
class Cell:
    """One cell of an RTLIL module: its type, name, parameters (name -> RTLIL text) and connections
    (port -> sigspec text)."""

    type: str
    name: str
    parameters: tuple[tuple[str, str], ...]
    connections: tuple[tuple[str, str], ...]

    def port(self, name: str) -> str | None:
        return next((sig for port, sig in self.connections if port == name), None)

    @property
    def sequential(self) -> bool:
        """A flip-flop or latch (merged only once its inputs are, never through its own loop)."""
        return "dff" in self.type or "dlatch" in self.type or self.type in ("$sr", "$ff")

    @property
    def memory(self) -> bool:
        return self.type.startswith("$mem")


def modules(design: str) -> Iterator[tuple[str, str]]:
    """``(name, body)`` of every module of RTLIL text ``design``."""
    for match in _MODULE.finditer(design):
        yield match.group(1), match.group(2)


def _cells(body: str) -> list[Cell]:
    cells = []
    for match in _CELL.finditer(body):
        params, conns = [], []
        for line in match.group(3).splitlines():
            words = line.split(maxsplit=2)
            if len(words) == 3 and words[0] == "parameter":
                params.append((words[1].lstrip("\\"), words[2]))
            elif len(words) == 3 and words[0] == "connect":
                conns.append((words[1].lstrip("\\"), words[2]))
        cells.append(Cell(match.group(1), match.group(2), tuple(params), tuple(conns)))
    return cells


def _widths(body: str) -> dict[str, int]:
    widths = {}
    for match in _WIRE.finditer(body):
        width = re.search(r"\bwidth (\d+)", match.group(1))
        widths[match.group(2)] = int(width.group(1)) if width else 1
    return widths


def _bits(sig: str, widths: dict[str, int]) -> list[Bit]:
    """The bits of sigspec ``sig``, least significant first."""
    stack: list[list[list[Bit]]] = [[]]
    for token in _TOKEN.findall(sig):
        if token == "{":
            stack.append([])
        elif token == "}":
            parts = stack.pop()
            stack[-1].append([bit for part in reversed(parts) for bit in part])  # a concatenation is MSB first
        elif token[0] in "$\\":
            name, _, sel = token.partition(" [")
            if sel:
                hi, _, lo = sel.rstrip("]").partition(":")
                rng = range(int(lo or hi), int(hi) + 1)
            else:
                rng = range(widths.get(name, 1))
            stack[-1].append([("w", name, i) for i in rng])
        elif "'" in token:
            stack[-1].append([("c", v) for v in reversed(token.split("'", 1)[1])])
        else:  # a plain integer: 32 bits
            value = int(token) & 0xFFFFFFFF
            stack[-1].append([("c", str(value >> i & 1)) for i in range(32)])
    return [bit for part in reversed(stack[0]) for bit in part] if len(stack[0]) > 1 else \
        (stack[0][0] if stack[0] else [])


def merged_cells(body: str) -> dict[str, list[Cell]]:
    """The cells of RTLIL module ``body`` that survive ``opt_merge`` (module docstring), each by name
    with the cells merged into it (itself first)."""
    widths = _widths(body)
    cells = _cells(body)
    alias: dict[Bit, Bit] = {}  # module-level connects: a bit of the left side is the right side's bit
    for match in _CONNECT.finditer(body):
        lhs, rhs = _split_connect(match.group(1))
        for a, b in zip(_bits(lhs, widths), _bits(rhs, widths), strict=False):
            alias[a] = b
    driver: dict[Bit, Bit] = {}  # a wire bit a cell drives -> that cell's output bit
    inputs: dict[str, list[tuple[str, list[Bit]]]] = {}
    known = [c for c in cells if c.type.startswith("$") and not c.memory]
    for cell in known:
        ins = []
        for port, sig in cell.connections:
            bits = _bits(sig, widths)
            if port in _OUTPUTS:
                for i, bit in enumerate(bits):
                    if bit[0] == "w":
                        driver[bit] = ("o", cell.name, port, i)
            else:
                ins.append((port, bits))
        inputs[cell.name] = ins

    rep: dict[str, str] = {c.name: c.name for c in known}  # cell -> the cell it merged into

    def canon(bit: Bit) -> Bit:
        seen = 0
        while bit in alias and seen < 64:  # a chain of connects (bounded: a loop of them is not logic)
            bit, seen = alias[bit], seen + 1
        out = driver.get(bit)
        if out is None:
            return bit
        return ("o", rep[out[1]], out[2], out[3])

    order = _topological(known, inputs, driver, alias)
    while True:
        classes: dict[tuple, str] = {}
        merged_ff = False
        for cell in order:
            ports = [(port, tuple(canon(b) for b in bits)) for port, bits in inputs[cell.name]]
            if cell.type in _COMMUTATIVE:
                ab = sorted(sig for port, sig in ports if port in ("A", "B"))
                ports = [(p, s) for p, s in ports if p not in ("A", "B")] + list(zip(("A", "B"), ab, strict=False))
            key = (cell.type, cell.parameters, tuple(sorted(ports)))
            first = classes.setdefault(key, cell.name)
            if rep[cell.name] != first:
                merged_ff |= cell.sequential
                rep[cell.name] = first
        if not merged_ff:  # combinational merges are final in one pass in topological order
            break
    out: dict[str, list[Cell]] = {}
    by_name = {c.name: c for c in known}
    for cell in known:
        out.setdefault(rep[cell.name], [by_name[rep[cell.name]]])
        if rep[cell.name] != cell.name:
            out[rep[cell.name]].append(cell)
    return out


def _split_connect(text: str) -> tuple[str, str]:
    """The two sigspecs of a module-level ``connect`` (each a name with an optional slice, a constant
    or a ``{ ... }`` concatenation)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == " " and depth == 0 and not text[i + 1:].startswith("["):
            return text[:i], text[i + 1:]
    raise ValueError(f"cannot split RTLIL connect {text!r}")


def _topological(known: list[Cell], inputs: dict[str, list[tuple[str, list[Bit]]]], driver: dict[Bit, Bit],
                 alias: dict[Bit, Bit]) -> list[Cell]:
    """``known`` with every combinational cell after the combinational cells that drive its inputs, the
    flip-flops last (their outputs, where combinational paths start, are distinct until they merge)."""
    by_name = {c.name: c for c in known}
    deps: dict[str, set[str]] = {}
    for cell in known:
        if cell.sequential:
            deps[cell.name] = set()
            continue
        names = set()
        for _, bits in inputs[cell.name]:
            for bit in bits:
                seen = 0
                while bit in alias and seen < 64:
                    bit, seen = alias[bit], seen + 1
                out = driver.get(bit)
                if out is not None and not by_name[out[1]].sequential:
                    names.add(out[1])
        deps[cell.name] = names
    users: dict[str, list[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(name)
    waiting = {name: len(ds) for name, ds in deps.items()}
    ready = [c.name for c in known if not waiting[c.name] and not c.sequential]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for user in users.get(name, ()):
            waiting[user] -= 1
            if not waiting[user]:
                ready.append(user)
    order += [c.name for c in known if waiting[c.name] > 0]  # a combinational loop: as they come
    order += [c.name for c in known if c.sequential]  # last: their inputs' cells are merged by then
    return [by_name[n] for n in order]
