"""Import a SCALE-Sim v3 topology CSV as a :class:`~workloads.graph.Graph`.

Two formats, told apart by the header row:

* **conv**: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
  Strides,`` optionally followed by a sparsity ratio ``N:M``. The header's words are matched loosely,
  as SCALE-Sim's own files write them (``Layer``, ``ifmap height``, ``channel``, ``num filters``).
* **GEMM**: ``Layer, M, N, K,`` optionally followed by a sparsity ratio ``N:M`` and/or a batch count
  (SCALE-Sim reads a 5th field as a ratio if it contains ``:`` and as the batch otherwise; a 6th
  field is the batch).

Files are read as people write them: spaces around fields, trailing commas (or none), tabs instead
of commas (SCALE-Sim's UNet_maestro.csv, a spreadsheet's tab-delimited text), CRLF line
ends, blank or all-empty rows, ``#`` comments (whole lines or the end of a row), header names in any
case, a layer name used twice (the later row is imported as ``NAME@ROW``, with a warning). Every
problem (unknown header, missing or non-integer field, filter larger than the input) is collected
and raised as one :class:`~accel.errors.WorkloadError` naming the file, the row (1-based line
number) and the field.

SCALE-Sim semantics, kept exactly so that our numbers compare with SCALE-Sim's:

* Sizes are already padded; SCALE-Sim adds no padding, but its ``topo_calc_hyperparams`` rounds
  the ofmap *up*: ``OH = ceil((H - FH + S) / S) = ceil((H - FH) / S) + 1`` (its operand matrices
  have that many rows; the last window may read past the ifmap edge). We use the same count so our
  GEMM shapes and MACs equal SCALE-Sim's; the overhang is recorded as bottom/right ``padding`` in
  the layer's ``attrs``. Where ``S`` divides ``H - FH`` this is the familiar ``(H - FH) // S + 1``.
* A conv row is the GEMM SCALE-Sim's operand matrices describe: ``m`` = Sr = ofmap pixels
  ``OH*OW``, ``k`` = T = window ``FH*FW*C``, ``n`` = Sc = ``Num Filter``. A row with ``Num Filter``
  = 1 (how SCALE-Sim's MobileNet writes depthwise layers) is just that: one filter over all channels.
  A row whose name contains ``DP`` is SCALE-Sim's explicit depthwise layer, which it splits into one
  layer per channel; here it is one layer with ``batch = C``, ``k = FH*FW``, ``n = Num Filter``.
* A GEMM row ``M, N, K`` is, in SCALE-Sim's ``topology_utils.load_arrays_gemm``, a conv with an
  ``M x K`` ifmap, a ``1 x K`` filter, one channel and ``N`` filters: ofmap pixels = M, window = K,
  filters = N. So the GemmShape is ``m = M, k = K, n = N`` (an ``M x K`` operand times ``K x N``),
  ``batch`` = the batch column (default 1). Note the column order is M, N, K.

A topology has no data dependencies between rows, so every row becomes one layer that reads its own
graph input (``<layer>.ifmap``: ``1 x C x H x W`` for conv, ``batch x M x K`` / ``M x K`` for GEMM) and
its own constant filter (``<layer>.filter``: ``NF x C x FH x FW``, or ``K x N``), and writes
``<layer>`` (no bias: SCALE-Sim has none). A sparsity ratio is kept in the layer's ``attrs``
(``sparsity``); the dense MAC count is reported, as SCALE-Sim's ``num_mac`` does.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from accel.errors import WorkloadError
from workloads.builder import GraphBuilder
from workloads.graph import GemmShape, Graph, OpKind

__all__ = ["load_scalesim_topology", "CONV_COLUMNS", "GEMM_COLUMNS"]

_log = logging.getLogger(__name__)

#: The conv format's columns after the layer name, as the header row names them.
CONV_COLUMNS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter",
                "Strides")
#: The GEMM format's columns after the layer name.
GEMM_COLUMNS = ("M", "N", "K")

_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class _Row:
    line: int
    fields: tuple[str, ...]


def load_scalesim_topology(path: str | Path, *, dtype: str = "int8") -> Graph:
    """Read the SCALE-Sim v3 topology CSV at ``path`` (conv or GEMM format) as a :class:`Graph`."""
    path = Path(path)
    where = f"SCALE-Sim topology {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{where} cannot be read: {exc}") from None
    rows = _rows(text)
    if not rows:
        raise WorkloadError(f"{where} is empty: expected a header row and at least one layer")
    header, body = rows[0], rows[1:]
    kind = _format(header)
    if kind is None:
        raise WorkloadError(
            f"{where}, row {header.line}: unknown header {', '.join(header.fields)!r}; expected"
            f" 'Layer name, {', '.join(CONV_COLUMNS)}' (conv) or 'Layer, {', '.join(GEMM_COLUMNS)}' (GEMM)"
        )
    if not body:
        raise WorkloadError(f"{where} has a header but no layer rows")
    b = GraphBuilder(path.stem, dtype)
    problems: list[str] = []
    names = {row.fields[0] for row in body}
    used: set[str] = set()
    renamed: list[str] = []
    for row in body:
        name = row.fields[0]
        if not name:
            problems.append(f"row {row.line}, field 'Layer name': must not be empty")
            continue
        if name in used:
            # SCALE-Sim runs rows by position, so a name may repeat (its DeepBench GEMM lists do):
            # the later row becomes its own layer, named after its line.
            unique = f"{name}@{row.line}"
            if unique in names:
                problems.append(f"row {row.line}, field 'Layer name': {name!r} is used twice")
                continue
            renamed.append(unique)
            row = _Row(row.line, (unique, *row.fields[1:]))
        used.add(row.fields[0])
        try:
            if kind == "conv":
                _conv_row(b, row, problems)
            else:
                _gemm_row(b, row, problems)
        except WorkloadError as exc:  # builder-level inconsistency: still name the row
            problems.append(f"row {row.line}: {exc}")
    if problems:
        raise WorkloadError(f"{where}: " + "; ".join(problems))
    if renamed:
        _log.warning("%s: %d row(s) repeat an earlier layer name; each is imported as NAME@ROW (%s)", where,
                     len(renamed), ", ".join(renamed[:3]) + (", ..." if len(renamed) > 3 else ""))
    graph = b.build()
    _log.info("%s: %d %s layers, %d MACs", where, len(graph.layers), kind, graph.total_macs)
    return graph


def _rows(text: str) -> list[_Row]:
    """Non-blank rows with fields stripped, a comment (a field starting with ``#`` and all after it:
    SCALE-Sim's MobileNets end rows with ``#dw``) and trailing empty fields dropped. Fields are
    separated by commas, or by tabs in a file whose first row has tabs and no comma."""
    rows = []
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","  # a spreadsheet's "tab delimited" text
    for line, fields in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        cleaned = [f.strip() for f in fields]
        comment = next((i for i, f in enumerate(cleaned) if f.startswith("#")), len(cleaned))
        del cleaned[comment:]
        while cleaned and cleaned[-1] == "":
            cleaned.pop()
        if cleaned:
            rows.append(_Row(line, tuple(cleaned)))
    return rows


def _normalise(header_field: str) -> str:
    return " ".join(header_field.lower().replace("_", " ").split())


#: What the first header field may say (SCALE-Sim's own files write all of these).
_NAME_HEADERS = ("layer name", "layer", "l", "name")
#: How each conv column's header starts, in SCALE-Sim's files: any case, singular or plural
#: ("num filters", "channel"), and its DeepBench files' ``Layer, IFMAP Width, IFMAP Width, ...``.
_CONV_STEMS = ("ifmap", "ifmap", "filter", "filter", "channel", "num filter", "stride")


def _format(header: _Row) -> str | None:
    """``conv`` or ``gemm`` from the header row, or None. SCALE-Sim itself reads columns by position
    and ignores the header's words; we check them loosely, so a file of another kind is refused."""
    fields = [_normalise(f) for f in header.fields]
    if not fields or fields[0] not in _NAME_HEADERS:
        return None
    if len(fields) > len(_CONV_STEMS) and all(f.startswith(s) for f, s in zip(fields[1:8], _CONV_STEMS, strict=True)):
        return "conv"
    if fields[1:4] == ["m", "n", "k"]:
        return "gemm"
    return None


def _ints(row: _Row, columns: tuple[str, ...], problems: list[str]) -> list[int] | None:
    values: list[int] = []
    ok = True
    for i, column in enumerate(columns, start=1):
        if i >= len(row.fields) or row.fields[i] == "":
            problems.append(f"row {row.line}, field {column!r}: missing (expected a positive integer)")
            ok = False
            continue
        text = row.fields[i]
        try:
            value = int(text)
        except ValueError:
            problems.append(f"row {row.line}, field {column!r}: expected a positive integer, not {text!r}")
            ok = False
            continue
        if value < 1:
            problems.append(f"row {row.line}, field {column!r}: expected a positive integer, not {value}")
            ok = False
        values.append(value)
    return values if ok else None


def _ratio(row: _Row, text: str, column: str, problems: list[str]) -> tuple[int, int] | None:
    match = _RATIO.match(text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):  # 0:4 would keep no weight at all
        problems.append(f"row {row.line}, field {column!r}: expected a sparsity ratio N:M with 1 <= N <= M,"
                        f" not {text!r}")
        return None
    return int(match[1]), int(match[2])


def _conv_row(b: GraphBuilder, row: _Row, problems: list[str]) -> None:
    values = _ints(row, CONV_COLUMNS, problems)
    extra = row.fields[len(CONV_COLUMNS) + 1:]
    sparsity = None
    if extra:
        sparsity = _ratio(row, extra[0], "Sparsity", problems)
        if len(extra) > 1:
            problems.append(f"row {row.line}: {len(extra) - 1} unexpected field(s) after 'Sparsity':"
                            f" {', '.join(extra[1:])!r}")
    if values is None:
        return
    h, w, fh, fw, c, nf, stride = values
    if fh > h or fw > w:
        problems.append(f"row {row.line}, field 'Filter Height'/'Filter Width': filter {fh}x{fw} is"
                        f" larger than the ifmap {h}x{w}")
        return
    name = row.fields[0]
    # SCALE-Sim's topo_calc_hyperparams: ofmap = ceil((H - FH + S) / S), i.e. rounded *up*.
    oh, ow = -(-(h - fh) // stride) + 1, -(-(w - fw) // stride) + 1
    pad_b, pad_r = (oh - 1) * stride + fh - h, (ow - 1) * stride + fw - w
    depthwise = "DP" in name  # SCALE-Sim's convention: split per channel
    groups = c if depthwise else 1
    x = b.input(f"{name}.ifmap", (1, c, h, w))
    f = b.constant(f"{name}.filter", (nf * groups, 1, fh, fw) if depthwise else (nf, c, fh, fw))
    gemm = GemmShape(m=oh * ow, k=fh * fw * (1 if depthwise else c), n=nf, batch=groups)
    attrs = {"kernel": (fh, fw), "stride": (stride, stride), "padding": (0, 0, pad_b, pad_r), "groups": groups,
             "in_channels": c, "out_channels": nf * groups, "depthwise": depthwise, "line": row.line}
    if sparsity:
        attrs["sparsity"] = sparsity
    b.layer(OpKind.CONV, [x, f], [(1, nf * groups, oh, ow)], name=name, outs=[name], gemm=gemm,
            attrs=attrs, source_op="scalesim-conv")


def _gemm_row(b: GraphBuilder, row: _Row, problems: list[str]) -> None:
    values = _ints(row, GEMM_COLUMNS, problems)
    extra = list(row.fields[len(GEMM_COLUMNS) + 1:])
    sparsity, batch = None, 1
    if extra and extra[0]:
        if ":" in extra[0]:
            sparsity = _ratio(row, extra[0], "Sparsity", problems)
        else:
            batch = _extra_int(row, extra[0], "Batch", problems)
    if len(extra) > 1 and extra[1]:
        batch = _extra_int(row, extra[1], "Batch", problems)
    if len(extra) > 2:
        problems.append(f"row {row.line}: unexpected field(s) after 'Batch': {', '.join(extra[2:])!r}")
    if values is None or batch is None:
        return
    m, n, k = values  # SCALE-Sim's column order is M, N, K
    name = row.fields[0]
    lead = (batch,) if batch > 1 else ()
    x = b.input(f"{name}.ifmap", (*lead, m, k))
    f = b.constant(f"{name}.filter", (*lead, k, n))
    attrs: dict[str, object] = {"M": m, "N": n, "K": k, "line": row.line}
    if sparsity:
        attrs["sparsity"] = sparsity
    b.layer(OpKind.GEMM, [x, f], [(*lead, m, n)], name=name, outs=[name],
            gemm=GemmShape(m=m, k=k, n=n, batch=batch), attrs=attrs, source_op="scalesim-gemm")


def _extra_int(row: _Row, text: str, column: str, problems: list[str]) -> int | None:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        problems.append(f"row {row.line}, field {column!r}: expected a positive integer, not {text!r}")
        return None
    return value
