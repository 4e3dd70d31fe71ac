"""A whole accelerator in RTL that runs the mapper's command programs (:mod:`rtl.npu.core`), and the
literal data semantics it is checked against (:mod:`rtl.npu.golden`)."""

from rtl.npu.core import NPU, QUEUES
from rtl.npu.golden import Memories, execute

__all__ = ["NPU", "QUEUES", "Memories", "execute"]
