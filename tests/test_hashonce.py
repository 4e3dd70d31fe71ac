"""A design and a layer's operands hash their fields once, and equal objects still hash alike."""

import dataclasses
import pickle
from dataclasses import dataclass

import pytest

from accel import config
from accel.hashonce import hash_once


def test_equal_designs_hash_alike_and_find_each_other():
    design, again = config.load("gemmini"), config.load("gemmini")
    table = {design: "found"}
    assert hash(design) == hash(again) and table[again] == "found"
    other = dataclasses.replace(design, name="other")
    assert other not in table and hash(other) != hash(design)


def test_the_hash_is_computed_once():
    calls = []

    @hash_once
    @dataclass(frozen=True)
    class Shape:
        m: int

        def __hash__(self) -> int:  # what dataclass would generate, counted
            calls.append(self.m)
            return hash((self.m,))

    shape = Shape(3)
    assert hash(shape) == hash(shape) == hash((3,)) and calls == [3]


def test_a_pickled_design_leaves_its_hash_behind():
    design = config.load("tpu-v1")
    hash(design)
    copy = pickle.loads(pickle.dumps(design))
    assert "_hash_once" not in vars(copy)  # another process computes its own (string hashes differ)
    assert copy == design and hash(copy) == hash(design)


def test_only_dataclasses_it_can_keep_a_hash_on():
    @dataclass(frozen=True, slots=True)
    class Slotted:
        m: int

    with pytest.raises(TypeError, match="Slotted"):
        hash_once(Slotted)
