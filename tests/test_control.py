"""The control model: a host issuing the command program (accel.hardware.Control, sim.engine's host stage)."""

from __future__ import annotations

import dataclasses

import pytest

import mapper
import sim
from accel import config
from accel.errors import ConfigError
from accel.hardware import Control
from accel.timing import command_cycles
from workloads.builder import GraphBuilder


def _plan(control: Control):
    b = GraphBuilder("small")
    x = b.activation(b.conv(b.input("x", (1, 8, 10, 10)), 16, 3, 1, 1, name="conv"), "relu")
    b.linear(b.flatten(x), 32, name="fc")
    arch = dataclasses.replace(config.load("fpga-small"), control=control)
    return mapper.map_graph(b.build(), arch)


def test_no_host_is_the_default_and_changes_nothing():
    plain = sim.simulate(_plan(Control()))
    assert not config.load("gemmini").control.host_issued
    zero = sim.simulate(_plan(Control(issue_cycles=0, queue_depth=0)))
    assert zero.trace == plain.trace


def test_issue_cost_and_queue_depth_bound_the_run():
    plain = sim.simulate(_plan(Control()))
    n = len(plain.plan.commands)
    slow_host = sim.simulate(_plan(Control(issue_cycles=500)))
    assert slow_host.total_cycles >= 500 * n > plain.total_cycles  # the host issues one command per 500 cycles
    serial = sim.simulate(_plan(Control(queue_depth=1)))  # one command in flight: no overlap at all
    busy = sum(command_cycles(serial.arch, c) for c in serial.plan.commands)
    assert serial.total_cycles == busy > plain.total_cycles
    deep = sim.simulate(_plan(Control(queue_depth=10_000)))
    assert deep.total_cycles == plain.total_cycles


def test_control_comes_from_toml_and_is_checked():
    text = config.dumps(config.load("fpga-small")).replace("issue_cycles = 0", "issue_cycles = 12")
    assert config.loads(text).control == Control(issue_cycles=12)
    with pytest.raises(ConfigError, match="control.queue_depth must be a non-negative integer, not -1"):
        config.loads(text.replace("queue_depth = 0", "queue_depth = -1"))
