"""Write an int8 ONNX model to check a design with: seeded weights and calibration, onnxruntime's quantizer.

For a float ONNX graph whose weights are missing (``../shared/data/onnx`` holds graphs with their
weights stripped) or present, fills the missing weights with seeded random values, optionally
gives the graph inputs new shapes and prunes the weights to N:M, calibrates on seeded ``N(0, 1)``
inputs and writes the QDQ (or operator-form) model that ``accel run --check-numerics`` compares a
design against:

    python examples/quantize_onnx.py ../shared/data/onnx/resnet18.onnx --out resnet18_int8.onnx
    python examples/quantize_onnx.py ../shared/data/onnx/mobilenetv2.onnx --input-shape input.1=1,3,96,96 \\
        --nm 2:4 --format qoperator --per-channel --out mobilenetv2_2_4_int8.onnx
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import onnx

from workloads.quantize import FORMATS, shared_model


def _shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, _, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=D0,D1,..., not {text!r}") from None
    if not name or not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=D0,D1,... with positive sizes, not {text!r}")
    return name, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a float ONNX model (its weights may be stripped)")
    parser.add_argument("--out", type=Path, required=True, help="where the quantized model goes (.onnx)")
    parser.add_argument("--input-shape", type=_shape, action="append", default=[], metavar="NAME=D0,D1,...",
                        help="a new shape for a graph input (repeatable; e.g. input.1=1,3,64,48)")
    parser.add_argument("--format", choices=FORMATS, default="qdq", help="QDQ (default) or the operator form")
    parser.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    parser.add_argument("--nm", default=None, metavar="N:M", help="prune the float weights to N:M first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the calibration data")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # onnxruntime's quantizer advises pre-processing on every call
    _, quantized = shared_model(args.model, fmt=args.format, per_channel=args.per_channel, seed=args.seed,
                                input_shapes=dict(args.input_shape) or None, nm=args.nm)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    onnx.save(quantized, str(tmp))
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.format}, {sum(n.op_type.startswith('Q') for n in quantized.graph.node)} "
          "quantized nodes)")


if __name__ == "__main__":
    main()
