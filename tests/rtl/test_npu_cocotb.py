"""The NPU's Verilog on Icarus through cocotb: whole command programs, bit-exact against
rtl.npu.golden (on sim.numerics) and cycle-exact against sim.simulate's trace.

One build per array configuration (4x4 and 8x8 fpga-small) runs every program of that
configuration (the NPU loads programs at run time): hand-written ones first (a GEMM tile through
every unit, a dependency chain across all queues), then what ``mapper.map_graph`` emits for small
GEMM layers, a two-layer MLP with a ReLU, convolutions (3x3 with padding 1, one of stride 2, and a
grouped one on the array) and a three-layer MLP whose intermediates the ILP allocator keeps in the
scratchpad, and corrupted programs, which must fail. A convolution's computes read the input band
the mapper loaded: the testbench writes the host's feeder table (rtl.npu.golden.feeder_table,
through ``rq_*`` with ``rq_table`` 3), so the NPU gathers the im2col rows (the input zero point in
the padding) as golden, and so sim.execute (test_npu_feeder.py), computes them; vector ops are timed
only. The mapper's programs move strided DRAM
blocks (and the resident MLP a strided scratchpad block), which the golden model follows as
sim.execute does. A third build, 4x4 with 2:4 sparsity, runs N:M computes: the mapper's program for
a GEMM layer sparsified 2:4 (its DRAM holds the packed tiles of a pruned matrix, as sim.execute
writes them) and a hand-written one mixing them with dense computes, beside dense programs.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from accel.commands import Buffer, Compute, Load, Move, Store, Vector
from accel.config import load
from accel.encoding import (
    FeederTable,
    RequantChannel,
    RequantStep,
    RequantTable,
    decode_program,
    encode_feeder_table,
    encode_program,
    encode_requant_table,
)
from accel.hardware import Dataflow, Sparsity
from mapper import map_graph
from mapper.emit import dram_addresses
from mapper.options import MapOptions
from mapper.plan import Plan
from rtl.cocotb_runner import run_cocotb
from rtl.npu import NPU, execute
from rtl.npu.core import refusal
from rtl.npu.golden import feeder_table
from sim.numerics import nm_compress, nm_prune
from sim.sparsity import pack_entries
from workloads.builder import GraphBuilder
from workloads.sparsity import sparsify

TESTBENCH = Path(__file__).with_name("npu_tb.py")
WS, OS, ACC = Dataflow.WS, Dataflow.OS, Buffer.ACCUMULATOR


def gemm_tile() -> tuple:
    """A 5x6 @ 6x7 tile (no dimension a multiple of the 4x4 array) through every unit."""
    shape = dict(m=5, k=6, n=7, input_addr=0, weight_addr=64)
    return (
        Load(id=0, layer="t", tensor="x", size_bytes=30, addr=0, dram_addr=0),
        Load(id=1, layer="t", tensor="w", size_bytes=42, addr=64, dram_addr=64),
        Compute(id=2, layer="t", deps=(0, 1), dataflow=WS, output_addr=0, **shape),
        Compute(id=3, layer="t", deps=(0, 1), dataflow=OS, output_addr=256, **shape),
        Compute(id=4, layer="t", deps=(2,), dataflow=WS, output_addr=0, accumulate=True, **shape),
        Move(id=5, layer="t", deps=(3,), tensor="y", size_bytes=35, src_addr=256, addr=512),
        Store(id=6, layer="t", deps=(5,), tensor="y", size_bytes=35, buffer=Buffer.SCRATCHPAD, addr=512,
              dram_addr=256),
        Store(id=7, layer="t", deps=(4,), tensor="z", size_bytes=35, buffer=ACC, addr=0, dram_addr=320),
        Load(id=8, layer="t", tensor="bias", size_bytes=16, buffer=ACC, addr=768, dram_addr=128),
        Compute(id=9, layer="t", deps=(8,), dataflow=OS, m=2, k=3, n=2, input_addr=0, weight_addr=64,
                output_addr=768, accumulate=True),
        Store(id=10, layer="t", deps=(9,), tensor="b", size_bytes=4, buffer=ACC, addr=768, dram_addr=384),
    )


def dependency_chain() -> tuple:
    """Loads after stores (through DRAM), the vector unit between computes, moves feeding computes."""
    tile = dict(m=4, k=4, n=4, weight_addr=16)
    return (
        Load(id=0, layer="a", tensor="x", size_bytes=64, addr=0, dram_addr=0),
        Compute(id=1, layer="a", deps=(0,), dataflow=OS, input_addr=0, output_addr=0, **tile),
        Vector(id=2, layer="a", deps=(1,), op="relu", elements=16),
        Store(id=3, layer="a", deps=(2,), tensor="y", size_bytes=16, buffer=ACC, addr=0, dram_addr=512),
        Load(id=4, layer="b", deps=(3,), tensor="y", size_bytes=16, addr=128, dram_addr=512),
        Compute(id=5, layer="b", deps=(4,), dataflow=WS, input_addr=128, output_addr=64, **tile),
        Move(id=6, layer="b", deps=(5,), tensor="z", size_bytes=16, src_addr=64, addr=256),
        Vector(id=7, layer="b", deps=(6,), op="add", elements=7),
        Compute(id=8, layer="c", deps=(6, 7), dataflow=WS, input_addr=256, output_addr=128, **tile),
        Store(id=9, layer="c", deps=(8,), tensor="u", size_bytes=16, buffer=ACC, addr=128, dram_addr=600),
        Store(id=10, layer="c", deps=(6,), tensor="z", size_bytes=16, buffer=Buffer.SCRATCHPAD, addr=256,
              dram_addr=640),
    )


NM_TILE = dict(m=5, k=6, n=7, batch=2, dense_k=12, weights_at=128)
"""The shape of :func:`nm_tile`'s 2:4 products (``k`` kept rows of ``dense_k``) and where its packed
weights are in DRAM."""


def nm_tile() -> tuple:
    """2:4 computes (two 5 x 12 @ 12 x 7 products, 6 kept rows: partial folds, masked rows and columns)
    back to back with dense WS computes reading the same bytes, overwriting and accumulating."""
    t = NM_TILE
    dense = dict(m=5, k=6, n=7, dataflow=WS, input_addr=0, weight_addr=256)
    sparse = dict(m=t["m"], k=t["k"], n=t["n"], batch=t["batch"], dataflow=WS, input_addr=0, weight_addr=256,
                  sparsity=Sparsity(2, 4))
    weight_bytes = Sparsity(2, 4).compressed_bytes(t["batch"] * t["k"] * t["n"], 8)
    return (
        Load(id=0, layer="t", tensor="x", size_bytes=t["batch"] * t["m"] * t["dense_k"], addr=0, dram_addr=0),
        Load(id=1, layer="t", tensor="w", size_bytes=weight_bytes, addr=256, dram_addr=t["weights_at"]),
        Compute(id=2, layer="t", deps=(0, 1), output_addr=512, **dense),
        Compute(id=3, layer="t", deps=(0, 1), output_addr=0, **sparse),
        Compute(id=4, layer="t", deps=(3,), output_addr=0, accumulate=True, **sparse),
        Compute(id=5, layer="t", deps=(2,), output_addr=512, accumulate=True, **dense),
        Store(id=6, layer="t", deps=(4,), tensor="y", size_bytes=70, buffer=ACC, addr=0, dram_addr=512),
        Store(id=7, layer="t", deps=(5,), tensor="z", size_bytes=35, buffer=ACC, addr=512, dram_addr=640),
    )


def nm_tile_dram(rng: random.Random, size: int) -> bytes:
    """Small random codes, and at ``weights_at`` :func:`nm_tile`'s packed weights: each product's
    random ``dense_k x n`` matrix compressed 2:4, values then indices, column by column."""
    t, nm = NM_TILE, Sparsity(2, 4)
    dram = bytearray(rng.randrange(-3, 4) & 0xFF for _ in range(size))
    kept = [nm_compress(np.array([rng.randrange(-128, 128) for _ in range(t["dense_k"] * t["n"])]).reshape(
        t["dense_k"], t["n"]), nm.n, nm.m) for _ in range(t["batch"])]
    values, indices = (np.stack([getattr(c, f).reshape(t["k"], t["n"]).T for c in kept]) for f in ("values", "indices"))
    data = pack_entries(values, indices, value_bits=8, index_bits=nm.index_bits).tobytes()
    dram[t["weights_at"]:t["weights_at"] + len(data)] = data
    return bytes(dram)


def mapper_gemm(arch, m: int = 16, k: int = 32, n: int = 16) -> tuple:  # noqa: ANN001
    """What the mapper emits for an ``m x k @ k x n`` fully connected layer."""
    graph = GraphBuilder("fc")
    graph.linear(graph.input("x", (m, k)), n, bias=False, name="fc")
    return map_graph(graph.build(), arch).commands


def mapper_mlp(arch) -> tuple:  # noqa: ANN001
    """What the mapper emits for two fully connected layers with a ReLU between them (a vector op)."""
    graph = GraphBuilder("mlp")
    hidden = graph.activation(graph.linear(graph.input("x", (8, 16)), 16, bias=False, name="fc1"), "relu",
                              name="act")
    graph.linear(hidden, 8, bias=False, name="fc2")
    return map_graph(graph.build(), arch).commands


CONVS = {
    "mapper_conv": (dict(shape=(1, 4, 6, 6), out=8), dict(padding=1)),
    "mapper_conv_stride2": (dict(shape=(1, 4, 7, 7), out=8), dict(padding=1, stride=2)),
    "mapper_grouped": (dict(shape=(1, 16, 4, 4), out=16), dict(padding=1, groups=4)),
}
"""The convolution programs (3x3 kernels): input shape and output channels, the conv's other arguments.
(A depthwise convolution on the array is golden's and sim.execute's, test_npu_feeder.py, but not yet
the NPU's: the mapper loads its bands a channel or two per pixel, DMA rows the NPU refuses as not
whole 4-byte beats; the grouped convolution, 4 channels a group, runs the same per-group feeder.)"""


def conv_plan(arch, name: str) -> Plan:  # noqa: ANN001
    """What the mapper emits for convolution ``name`` of :data:`CONVS` (grouped ones on the array,
    ``MapOptions(depthwise="array")``: product ``b`` of a compute is group ``b0 + b``); the host's
    feeder table of it (rtl.npu.golden.feeder_table) makes its computes gather the im2col rows of
    the input bands they load."""
    shapes, conv = CONVS[name]
    graph = GraphBuilder(name)
    graph.conv(graph.input("x", shapes["shape"]), shapes["out"], 3, name="conv", bias=False, **conv)
    return map_graph(graph.build(), arch, MapOptions(depthwise="array"))


RESIDENT = ("fc1", "fc2")
"""The intermediates of :func:`resident_plan` that never leave the scratchpad."""


def resident_plan(arch) -> Plan:  # noqa: ANN001
    """Three fully connected layers (8x32 -> 32 -> 32 -> 16) mapped with the ILP allocator in a 4 KiB
    scratchpad: ``fc1`` and ``fc2`` go from the accumulator to the scratchpad (a Move) and feed the next
    layer there; only the input, the weights and ``fc3`` cross DRAM."""
    graph = GraphBuilder("mlp3")
    hidden = graph.input("x", (8, 32))
    for name, width in (("fc1", 32), ("fc2", 32), ("fc3", 16)):
        hidden = graph.linear(hidden, width, bias=False, name=name)
    return map_graph(graph.build(), arch, MapOptions(allocator="ilp", scratchpad_bytes=4096))


def design(rows: int, cols: int, sparsity: tuple[str, ...] = ()):  # noqa: ANN201
    """fpga-small with a ``rows x cols`` array and the N:M ``sparsity`` patterns (the testbench derives
    the same from the parameters)."""
    arch = load("fpga-small")
    if (rows, cols) != (arch.array.rows, arch.array.cols):
        arch = dataclasses.replace(arch, name=f"fpga-small-{rows}x{cols}",
                                   array=dataclasses.replace(arch.array, rows=rows, cols=cols))
    if sparsity:
        arch = dataclasses.replace(arch, name=f"{arch.name}-{'-'.join(sparsity)}", array=dataclasses.replace(
            arch.array, sparsity=tuple(Sparsity.parse(p) for p in sparsity)))
    return arch


def nm_gemm_plan(arch, m: int = 16, k: int = 32, n: int = 16, pattern: str = "2:4") -> Plan:  # noqa: ANN001
    """The mapper's plan of an ``m x k @ k x n`` fully connected layer sparsified ``pattern``: on a design
    with the pattern, WS computes of the compressed reduction reading packed weight tiles."""
    graph = GraphBuilder("fc")
    graph.linear(graph.input("x", (m, k)), n, bias=False, name="fc")
    return map_graph(sparsify(graph.build(), pattern), arch)


def nm_weights(plan: Plan, codes: np.ndarray) -> dict[int, bytes]:
    """The DRAM bytes of a plan's N:M weights ``codes`` (``k x n``) by address: each packed tile of
    ``plan.weight_tiles`` (kept values, then indices, column by column) as sim.execute writes them."""
    (name, tiles), = plan.weight_tiles.items()
    nm = next(c.sparsity for c in plan.commands if isinstance(c, Compute))
    kept = nm_compress(codes, nm.n, nm.m)
    values, indices = (v.reshape(-1, kept.cols)[None] for v in (kept.values, kept.indices))  # (1, kept k, n)
    base = dram_addresses(plan.graph, plan.arch)[0][name]
    out = {}
    for tile in tiles:
        (b0, k0, n0), (tb, tk, tn) = tile.origin, tile.extent
        block = np.s_[b0:b0 + tb, k0:k0 + tk, n0:n0 + tn]
        data = pack_entries(values[block].transpose(0, 2, 1), indices[block].transpose(0, 2, 1), value_bits=8,
                            index_bits=nm.index_bits)
        assert data.size == tile.size_bytes, (tile, data.size)
        out[base + tile.offset] = data.tobytes()
    return out


def nm_dram(plan: Plan, rng: random.Random, size: int) -> tuple[bytes, np.ndarray]:
    """Small random codes (``[-3, 4)``) everywhere, the plan's weights packed where its loads read them;
    and the dense weights (before pruning)."""
    dram = bytearray(rng.randrange(-3, 4) & 0xFF for _ in range(size))
    k, n = _weight_shape(plan)
    codes = np.array([rng.randrange(-3, 4) for _ in range(k * n)]).reshape(k, n)
    for addr, data in nm_weights(plan, codes).items():
        dram[addr:addr + len(data)] = data
    return bytes(dram), codes


def _weight_shape(plan: Plan) -> tuple[int, int]:
    gemm = next(layer.gemm for layer in plan.graph.layers if layer.gemm is not None)
    return gemm.k, gemm.n


def _dram_bytes(commands: tuple) -> int:
    end = max((c.dram_addr + (c.size_bytes if c.dram is None else c.dram.span_bytes) for c in commands
               if isinstance(c, Load | Store)), default=0)
    return -(-(end + 64) // 64) * 64


PROGRAMS = {
    "gemm_tile": lambda arch: gemm_tile(),
    "dependency_chain": lambda arch: dependency_chain(),
    "mapper_gemm": mapper_gemm,
    "mapper_gemm_large": lambda arch: mapper_gemm(arch, 32, 64, 32),
    "mapper_mlp": mapper_mlp,
    **{name: (lambda arch, name=name: conv_plan(arch, name).commands) for name in CONVS},
    "mapper_mlp3_resident": lambda arch: resident_plan(arch).commands,
    "nm_tile": lambda arch: nm_tile(),
    "mapper_gemm_2of4": lambda arch: nm_gemm_plan(arch).commands,
}
"""The valid programs by name (npu_tb.py has one cocotb test of each name), for an arch."""

NM_DRAMS = {
    "nm_tile": lambda arch, rng, size: nm_tile_dram(rng, size),
    "mapper_gemm_2of4": lambda arch, rng, size: nm_dram(nm_gemm_plan(arch), rng, size)[0],
}
"""The programs whose DRAM holds packed N:M weights of real (pruned) matrices, so valid indices (by
name: the image, for an arch, a random source and a size)."""

CORRUPTED = {
    # the mapper's last compute (whose results reach DRAM) reads its weights one byte off: the data differ
    "corrupted_command": ("mapper_gemm", lambda cmds: max(i for i, c in enumerate(cmds) if isinstance(c, Compute)),
                          lambda cmd: dataclasses.replace(cmd, weight_addr=cmd.weight_addr + 1)),
    # the first load moves 4 bytes more: only the cycles differ
    "corrupted_timing": ("dependency_chain", lambda cmds: 0,
                         lambda cmd: dataclasses.replace(cmd, size_bytes=cmd.size_bytes + 4)),
    # the 2:4 GEMM's last compute reads its packed weights one byte off (values and indices shift)
    "corrupted_nm_command": ("mapper_gemm_2of4",
                             lambda cmds: max(i for i, c in enumerate(cmds) if isinstance(c, Compute)),
                             lambda cmd: dataclasses.replace(cmd, weight_addr=cmd.weight_addr + 1)),
    # its first compute claims 1:4, a pattern the design does not have: the decoder refuses the program
    "refused_nm_pattern": ("mapper_gemm_2of4",
                           lambda cmds: next(i for i, c in enumerate(cmds) if isinstance(c, Compute)),
                           lambda cmd: dataclasses.replace(cmd, sparsity=Sparsity(1, 4))),
}
"""Programs with one command changed, run against the expectations of the original: (original, the
index of the command to change, the change)."""

FEEDER_CORRUPTED = {
    # the padded convolution's feeder table with every step's zero point one higher: the padding
    # lanes read 1, not the float graph's 0, so the data differ (the cycles do not)
    "corrupted_feeder": ("mapper_conv", lambda table: FeederTable(tuple(
        dataclasses.replace(s, zero_point=s.zero_point + 1) for s in table.steps))),
}
"""Programs run with a changed feeder table against the expectations of the original's: (original, the change)."""

CONFIGURED = {
    # gemm_tile with its Move (command 5) configured: fpga-small's Moves cannot requantize
    # (activation.latency_cycles 0), so the NPU stops the run with error
    "configured_move": ("gemm_tile", RequantTable(steps=(RequantStep(command=5, first_channel=0, columns=1,
                                                                     zero_point=0),),
                                                  channels=(RequantChannel(bias=0, multiplier=1 << 30, shift=1),))),
}
"""Programs run with a requantization table: (the program, the table)."""


def _programs(arch, names: tuple[str, ...]) -> dict[str, dict[str, str]]:  # noqa: ANN001
    """The testbench's ``programs`` parameter: each program's image and the DRAM it starts from (a
    corrupted one also carries its original's image, the expectations' reference)."""
    rng = random.Random(17)
    valid = {name: PROGRAMS[name](arch) for name in PROGRAMS if name in names or
             any(name == CORRUPTED[c][0] for c in names if c in CORRUPTED) or
             any(name == CONFIGURED[c][0] for c in names if c in CONFIGURED) or
             any(name == FEEDER_CORRUPTED[c][0] for c in names if c in FEEDER_CORRUPTED)}
    out = {}
    for name, commands in valid.items():
        size = max(1024, _dram_bytes(commands))
        if name in NM_DRAMS:
            dram = NM_DRAMS[name](arch, rng, size)
        else:
            # full-range bytes saturate the requantizing reads; small codes keep the mapper's k=32 sums in range
            low, high = (0, 256) if name == "gemm_tile" else (-3, 4)
            dram = bytes(rng.randrange(low, high) & 0xFF for _ in range(size))
        out[name] = {"image": encode_program(commands).hex(), "dram": dram.hex()}
        if name in CONVS:  # the host's feeder table (written through rq_* with rq_table 3)
            out[name]["feeder"] = list(encode_feeder_table(feeder_table(conv_plan(arch, name))))
    for name in names:
        if name in CORRUPTED:
            original, pick, change = CORRUPTED[name]
            commands = list(valid[original])
            index = pick(commands)
            commands[index] = change(commands[index])
            out[name] = {**out[original], "image": encode_program(commands).hex(),
                         "reference_image": out[original]["image"]}
        if name in FEEDER_CORRUPTED:
            original, change = FEEDER_CORRUPTED[name]
            table = change(feeder_table(conv_plan(arch, original)))
            out[name] = {**out[original], "feeder": list(encode_feeder_table(table)),
                         "reference_feeder": out[original]["feeder"]}
        if name in CONFIGURED:
            original, table = CONFIGURED[name]
            steps, channels = encode_requant_table(table)
            out[name] = {**out[original], "requant": {"steps": list(steps), "channels": list(channels)}}
    return {name: out[name] for name in names}


DESIGNS = {
    "4x4": ((4, 4), ("gemm_tile", "dependency_chain", "mapper_gemm", "mapper_gemm_large", "mapper_mlp",
                     "mapper_conv", "mapper_conv_stride2", "mapper_grouped", "mapper_mlp3_resident",
                     "corrupted_command", "corrupted_feeder", "corrupted_timing", "configured_move")),
    "8x8": ((8, 8), ("gemm_tile", "dependency_chain", "mapper_gemm", "mapper_mlp", "mapper_conv",
                     "mapper_conv_stride2", "mapper_grouped", "corrupted_command", "corrupted_timing")),
}
"""fpga-small's array as (rows, cols) and the programs each build runs, in npu_tb.py's order. (An
8x8 NPU simulates about nine times slower per cycle than a 4x4 one on Icarus, so it leaves out the
two longest programs: it runs every kind of command and layer the 4x4 does, within the suite's
time budget.)"""


@pytest.mark.parametrize("name", [name for name, (_, names) in DESIGNS.items() if "mapper_mlp3_resident" in names])
def test_the_ilp_keeps_the_three_layer_networks_intermediates_in_the_scratchpad(name: str) -> None:
    """What mapper_mlp3_resident runs: fc1 and fc2 are never stored to or loaded from DRAM, but moved
    into the scratchpad, and the allocation has them on chip without a DRAM step."""
    plan = resident_plan(design(*DESIGNS[name][0]))
    assert plan.allocation is not None and plan.allocation.method == "ilp"
    through_dram = {cmd.tensor for cmd in plan.commands if isinstance(cmd, Load | Store)}
    moved = {cmd.tensor for cmd in plan.commands if isinstance(cmd, Move)}
    assert through_dram == {"x", "fc1.weight", "fc2.weight", "fc3.weight", "fc3"}
    assert moved == set(RESIDENT)
    for tensor in RESIDENT:
        where = plan.allocation.tensors[tensor]
        assert where.intervals and not where.read_steps and not where.write_steps, where


def _strided(block) -> bool:  # noqa: ANN001
    return block is not None and block.planes * block.rows > 1 and block.row_stride != block.row_bytes


def test_the_mapper_programs_move_strided_blocks_in_whole_beats() -> None:
    """What the 4x4 build runs beyond contiguous DMA: the mapper's layers load and store strided DRAM
    blocks (a tile's columns of a row-major matrix), the resident MLP moves results into a strided
    scratchpad block; every block's rows are whole 4-byte beats (what the NPU's DMA takes), and no
    compute reads an operand through a block (the NPU refuses that)."""
    arch = design(*DESIGNS["4x4"][0])
    for name in ("mapper_gemm", "mapper_gemm_large", "mapper_mlp", *CONVS, "mapper_mlp3_resident"):
        commands = PROGRAMS[name](arch)
        loads = [c.dram for c in commands if isinstance(c, Load) and _strided(c.dram)]
        stores = [c.dram for c in commands if isinstance(c, Store) and _strided(c.dram)]
        # (the padded 3x3 convolution's tiles are whole rows of its channels-last tensors)
        assert (loads and stores) or name == "mapper_conv", f"{name}: no strided DRAM load or store"
        blocks = [c.dram for c in commands if isinstance(c, Load | Store) and c.dram is not None]
        blocks += [c.dst for c in commands if isinstance(c, Move) and c.dst is not None]
        assert all(b.row_bytes % 4 == 0 for b in blocks), f"{name}: {blocks}"
        assert not any(c.input_block or c.weight_block for c in commands if isinstance(c, Compute)), name
    moves = [c.dst for c in PROGRAMS["mapper_mlp3_resident"](arch) if isinstance(c, Move)]
    assert moves and all(_strided(b) for b in moves), moves


def test_the_mappers_2of4_gemm_runs_nm_computes_that_golden_computes() -> None:
    """What mapper_gemm_2of4 runs: on a 4x4 fpga-small with 2:4, the 16x32 @ 32x16 layer sparsified
    2:4 is four WS computes of 8 kept rows (16 dense) on packed weight tiles, none refused (fpga-small
    without the pattern refuses them); golden's output in DRAM is the layer's saturated product with
    the pruned weights (an independent numpy computation: sim.execute needs a quantized graph)."""
    arch = design(*NM_DESIGNS["4x4-2:4"][0], NM_DESIGNS["4x4-2:4"][1])
    plan = nm_gemm_plan(arch)
    computes = [c for c in plan.commands if isinstance(c, Compute)]
    assert len(computes) == 4 and all(c.sparsity == Sparsity(2, 4) and c.k == 8 for c in computes), computes
    assert not [refusal(arch, c) for c in plan.commands if refusal(arch, c)]
    assert refusal(design(4, 4), computes[0]) == "is 2:4 sparse, a pattern the array does not have"
    dram, w = nm_dram(plan, random.Random(3), max(1024, _dram_bytes(plan.commands)))
    addr = dram_addresses(plan.graph, arch)[0]
    x = np.frombuffer(dram[addr["x"]:addr["x"] + 16 * 32], np.int8).reshape(16, 32).astype(np.int64)
    y = np.frombuffer(bytes(execute(arch, plan.commands, dram).dram[addr["fc"]:addr["fc"] + 256]), np.int8)
    assert np.array_equal(y.reshape(16, 16), np.clip(x @ nm_prune(w, 2, 4), -128, 127))


def _run_on_icarus(name: str, rows: int, cols: int, names: tuple[str, ...], tmp_path: Path,
                   sparsity: tuple[str, ...] = ()) -> dict:
    """Build the NPU of ``design(rows, cols, sparsity)`` once, run ``names`` on it, and check that every
    valid program passed; the cases by name."""
    arch = design(rows, cols, sparsity)
    programs = _programs(arch, names)
    words = max(len(p["image"]) // 8 for p in programs.values())
    size = max(len(decode_program(bytes.fromhex(p["image"]))) for p in programs.values())
    npu = NPU(arch, max_commands=size, program_words=words)
    parameters = {"rows": rows, "cols": cols, "max_commands": size, "program_words": words, "programs": programs}
    if sparsity:
        parameters["sparsity"] = list(sparsity)
    result = run_cocotb(toplevel="npu", component=npu, test_module=TESTBENCH, build_dir=tmp_path,
                        parameters=parameters, check=False)
    by_name = {case.name: case for case in result.cases if case.name in programs}
    assert set(by_name) == {*programs}, result.summary()
    for program in programs:
        if program not in CORRUPTED and program not in CONFIGURED and program not in FEEDER_CORRUPTED:
            assert by_name[program].passed, f"{name} {program}: {by_name[program].message}"
    return by_name


@pytest.mark.rtl
@pytest.mark.parametrize("name", DESIGNS)
def test_npu_runs_programs_bit_and_cycle_exact_on_icarus(name: str, tmp_path: Path) -> None:
    """Every valid program matches golden and the simulator's trace; every corrupted one fails, for the
    reason its corruption must cause (data: DRAM differs; timing: only the cycles)."""
    (rows, cols), names = DESIGNS[name]
    by_name = _run_on_icarus(name, rows, cols, names, tmp_path)
    corrupted = by_name["corrupted_command"]
    assert not corrupted.passed, "a program with a corrupted command must not match the original's golden"
    assert "DRAM differed from rtl.npu.golden.execute" in corrupted.message
    late = by_name["corrupted_timing"]
    assert not late.passed, "a program with a longer load must not match the original's trace"
    assert "command 0 (Load) ran [0, 39), simulator [0, 38)" in late.message
    assert "DRAM differed" not in late.message
    if "corrupted_feeder" in by_name:
        feeder = by_name["corrupted_feeder"]
        assert not feeder.passed, "a feeder table with a wrong zero point must not match the original's golden"
        assert "DRAM differed from rtl.npu.golden.execute" in feeder.message and "ran [" not in feeder.message
    if "configured_move" in by_name:
        move = by_name["configured_move"]
        assert not move.passed and "the NPU refused the program" in move.message, move.message


NM_DESIGNS = {
    "4x4-2:4": ((4, 4), ("2:4",), ("gemm_tile", "mapper_gemm", "nm_tile", "mapper_gemm_2of4",
                                   "corrupted_nm_command", "refused_nm_pattern")),
    "8x8-2:4": ((8, 8), ("2:4",), ("nm_tile", "mapper_gemm_2of4", "corrupted_nm_command")),
}
"""Designs with N:M patterns: fpga-small's array as (rows, cols), its ``sparsity``, and the programs its
build runs (dense ones too: the dense tiles are beside the sparse one), in npu_tb.py's order. (The
8x8 build runs the sparse programs only: its dense tiles are the 8x8 design's above.)"""


@pytest.mark.rtl
@pytest.mark.parametrize("name", NM_DESIGNS)
def test_npu_runs_nm_sparse_programs_bit_and_cycle_exact_on_icarus(name: str, tmp_path: Path) -> None:
    """The mapper's 2:4 GEMM matches golden and the simulator's trace on a design with the pattern,
    beside dense programs; the same program with a compute reading its packed weights a byte off
    fails on the data, and one claiming a pattern the design lacks is refused by the decoder."""
    (rows, cols), sparsity, names = NM_DESIGNS[name]
    by_name = _run_on_icarus(name, rows, cols, names, tmp_path, sparsity)
    corrupted = by_name["corrupted_nm_command"]
    assert not corrupted.passed, "a 2:4 compute reading its weights a byte off must not match the original's golden"
    assert "DRAM differed from rtl.npu.golden.execute" in corrupted.message
    if "refused_nm_pattern" in by_name:
        refused = by_name["refused_nm_pattern"]
        assert not refused.passed and "the NPU refused the program" in refused.message, refused.message
