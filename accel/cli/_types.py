"""Argument types shared by the ``accel`` subcommands: each turns text into a value or says why not."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["int_at_least", "positive_int", "non_negative_int", "dimension"]


def int_at_least(minimum: int, words: str) -> Callable[[str], int]:
    """An argparse type for integers ``>= minimum``; ``words`` names them in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, not {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "a non-negative integer")


def dimension(text: str) -> tuple[str, int]:
    """``NAME=SIZE``: a symbolic dimension of an ONNX model's inputs and the size to give it."""
    name, sep, size = text.partition("=")
    if not sep or not name.strip() or not size.strip().isdigit() or int(size) < 1:
        raise argparse.ArgumentTypeError(f"must be NAME=SIZE with a positive integer SIZE (e.g. seq=128), not {text!r}")
    return name.strip(), int(size)
