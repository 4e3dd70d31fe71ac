"""DNN workloads: the graph IR, a built-in model zoo, and importers (ONNX, SCALE-Sim topologies)."""

from workloads.graph import DTYPE_BYTES, GemmShape, Graph, Layer, OpKind, Tensor, TensorKind

__all__ = ["DTYPE_BYTES", "GemmShape", "Graph", "Layer", "OpKind", "Tensor", "TensorKind"]
