"""Bytes one command moves at each level of the memory hierarchy: a pure function of the hardware.

Levels: ``dram`` (off-chip), ``scratchpad`` and ``accumulator`` (on-chip SRAM, reads plus writes) and
``array`` (operand bytes passed between neighbouring PEs). The energy model charges these same
counts (:mod:`accel.energy`), and the simulator sums them per layer, so traffic and energy agree.

A compute tile ``m x k @ k x n`` on an ``R x C`` array reads, per dataflow:

=====  ==========================  ============================  ===========================
       inputs read (elements)      weights read                  partial-sum updates per output
=====  ==========================  ============================  ===========================
WS     ``m k ceil(n/C)``           ``k n`` (preloaded once)      ``ceil(k/R)``
OS     ``m k ceil(n/C)``           ``k n ceil(m/R)``             1 (accumulated in the PEs)
IS     ``m k`` (preloaded once)    ``k n ceil(m/C)``             ``ceil(k/R)``
=====  ==========================  ============================  ===========================

For an N:M compute (``k`` compressed), the inputs read are the dense ones: ``m/n`` times as many.
Each output is written once per update and read back for every update after the first (and once
more when the command accumulates onto what the accumulator already holds).
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.commands import Command, Compute, Load, Move, Store, Vector
from accel.hardware import Accelerator, Dataflow, Sparsity, SystolicArray
from accel.timing import ceil_div

__all__ = ["ComputeTraffic", "compute_traffic", "product_traffic", "command_bytes", "LEVELS"]

LEVELS = ("dram", "scratchpad", "accumulator", "array")


@dataclass(frozen=True)
class ComputeTraffic:
    """Element counts of one compute command (all ``batch`` products)."""

    inputs: int
    weights: int
    psum_writes: int
    psum_reads: int
    macs: int
    hop_bytes_per_mac: int  # bytes passed on to the next PE per MAC (the two moving operands)


def product_traffic(array: SystolicArray, dataflow: Dataflow, m, k, n, accumulate, sparsity: Sparsity | None):  # noqa: ANN001, ANN201
    """``(inputs, weights, outputs, updates, psum_reads, hop_bytes_per_mac)`` of one product ``m x k @ k x n``
    of a compute (the table above; ``accumulate``: onto what the accumulator holds). Plain arithmetic on
    the sizes, so it is elementwise when they (and ``accumulate``) are numpy arrays: the one source of a
    compute's traffic, for :func:`compute_traffic` and the energy closed form the mapper's search
    prices candidate tiles with (:func:`accel.energy.compute_energy_function`)."""
    in_b, w_b = array.input_format.size_bytes, array.weight_format.size_bytes
    acc_b = array.accumulator_format.size_bytes
    if dataflow is Dataflow.WS:
        inputs, weights, updates, hop = m * k * ceil_div(n, array.cols), k * n, ceil_div(k, array.rows), in_b + acc_b
    elif dataflow is Dataflow.OS:
        inputs, weights, updates, hop = m * k * ceil_div(n, array.cols), k * n * ceil_div(m, array.rows), 1, in_b + w_b
    else:
        inputs, weights, updates, hop = m * k, k * n * ceil_div(m, array.cols), ceil_div(k, array.rows), w_b + acc_b
    if sparsity is not None:  # the PEs select among all m activations of each group
        inputs = inputs * sparsity.m // sparsity.n
    outputs = m * n
    psum_reads = outputs * (updates - 1) + outputs * accumulate
    return inputs, weights, outputs, updates, psum_reads, hop


def compute_traffic(arch: Accelerator, c: Compute) -> ComputeTraffic:
    inputs, weights, outputs, updates, psum_reads, hop = product_traffic(arch.array, c.dataflow, c.m, c.k, c.n,
                                                                         c.accumulate, c.sparsity)
    return ComputeTraffic(c.batch * inputs, c.batch * weights, c.batch * outputs * updates, c.batch * psum_reads,
                          c.batch * c.m * c.k * c.n, hop)


def command_bytes(arch: Accelerator, command: Command) -> dict[str, int]:
    """Bytes ``command`` moves at each level it touches (keys from :data:`LEVELS`; the kind's entry
    in :data:`accel.pricing.PRICING`)."""
    from accel.pricing import pricing

    return pricing(command).bytes(arch, command)


def transfer_bytes(arch: Accelerator, command: Load | Store) -> dict[str, int]:
    return {"dram": command.size_bytes, command.buffer.value: command.size_bytes}


def move_bytes(arch: Accelerator, command: Move) -> dict[str, int]:
    """Read in the accumulator format, written in the input format."""
    a = arch.array
    values = ceil_div(command.size_bytes, a.input_format.size_bytes)
    return {"accumulator": values * a.accumulator_format.size_bytes, "scratchpad": command.size_bytes}


def vector_bytes(arch: Accelerator, command: Vector) -> dict[str, int]:
    return {"scratchpad": 2 * command.elements * arch.array.input_format.size_bytes}


def compute_bytes(arch: Accelerator, command: Compute) -> dict[str, int]:
    t = compute_traffic(arch, command)
    a = arch.array
    acc_b = a.accumulator_format.size_bytes
    return {
        "scratchpad": t.inputs * a.input_format.size_bytes + t.weights * a.weight_format.size_bytes,
        "accumulator": (t.psum_writes + t.psum_reads) * acc_b,
        "array": t.macs * t.hop_bytes_per_mac,
    }
