"""Per-channel affine chains fused into the layers they are: a conv bias, a BatchNorm.

Keras 3's exports spell a Conv2D's bias as an Add of a (1, 1, 1, C) constant after the
convolution, and an inference BatchNormalization as Sub(moving mean), Mul(gamma /
sqrt(var + eps)), Add(beta). After the layout pass these constants are (1, C, 1, 1):

- Conv followed by Add of a per-channel constant (the Conv's output read by nothing else)
  is one Conv with that bias (added to its own, if any);
- Sub(m) -> Mul(s) (or Div) -> Add(b) (or Sub) with per-channel constants, each output read
  by the next node only, is one BatchNormalization with mean m, scale s, shift b and a
  variance that makes sqrt(var + eps) exactly 1 in float32 (the Add is optional). Chains
  that do not start with a Sub are left as they are: a Mul + Add is how netgen's own
  exporter writes a Caffe Scale with bias, and must read back as one.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.onnx.normalize.rewrite import (array, consumers, node_name,
                                           per_channel, replace_nodes)

EPSILON = np.float32(1e-5)  # Caffe's BatchNorm default
UNIT_VARIANCE = np.float32(np.float32(1.0) - EPSILON)
assert np.float32(UNIT_VARIANCE + EPSILON) == np.float32(1.0)


class _Fuser:
    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.const = {t.name: t for t in self.graph.initializer}
        self.readers = consumers(self.graph)
        self.outputs = {o.name for o in self.graph.output}
        self.removed: set[int] = set()
        self.new_initializers: list[onnx.TensorProto] = []
        self.taken = {t.name for t in self.graph.initializer}
        for node in self.graph.node:
            self.taken.update(node.output)
        self.channels: dict[str, int] = {}  # Conv output -> its channels (from the weight)

    def fresh(self, base: str, value: np.ndarray) -> str:
        name = base
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        self.new_initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def sole_reader(self, tensor: str) -> onnx.NodeProto | None:
        readers = self.readers.get(tensor, [])
        if tensor in self.outputs or len(readers) != 1:
            return None
        return readers[0]

    def constant_operand(self, node: onnx.NodeProto, tensor: str, channels: int | None):
        """(the constant as a (C,) vector, the other input) for X op c, else None."""
        if len(node.input) != 2:
            return None
        first, second = node.input
        if second in self.const and first not in self.const and first == tensor:
            value = array(self.const[second])
        elif node.op_type in ("Add", "Mul") and first in self.const and second == tensor:
            value = array(self.const[first])
        else:
            return None
        if value is None or value.dtype != np.float32:
            return None
        return per_channel(value, 4, channels)

    # ------------------------------------------------------------ conv bias

    def conv_bias(self, conv: onnx.NodeProto) -> None:
        weight = self.const.get(conv.input[1]) if len(conv.input) > 1 else None
        if weight is None or len(weight.dims) != 4:
            return
        channels = int(weight.dims[0])
        add = self.sole_reader(conv.output[0])
        if add is None or add.op_type != "Add":
            return
        vector = self.constant_operand(add, conv.output[0], channels)
        if vector is None:
            return
        bias = np.broadcast_to(vector, (channels,)).astype(np.float32)
        if len(conv.input) > 2 and conv.input[2]:
            old = self.const.get(conv.input[2])
            old_value = array(old) if old is not None else None
            if old_value is None or old_value.size != channels:
                return
            bias = (old_value.reshape(-1) + bias).astype(np.float32)
        name = self.fresh(f"{node_name(conv)}.bias", bias)
        if len(conv.input) > 2:
            conv.input[2] = name
        else:
            conv.input.append(name)
        conv.output[0] = add.output[0]
        self.removed.add(id(add))
        self.readers[conv.output[0]] = self.readers.get(add.output[0], [])

    # ------------------------------------------------------------ BatchNorm

    def batch_norm(self, sub: onnx.NodeProto) -> onnx.NodeProto | None:
        x = sub.input[0]
        mean = self.constant_operand(sub, x, None)
        if mean is None:
            return None
        mul = self.sole_reader(sub.output[0])
        if mul is None or mul.op_type not in ("Mul", "Div"):
            return None
        scale = self.constant_operand(mul, sub.output[0], None)
        if scale is None or (mul.op_type == "Div" and np.any(scale == 0)):
            return None
        channels = max(mean.size, scale.size)
        chain, last = [sub, mul], mul
        shift = np.zeros(1, np.float32)
        add = self.sole_reader(mul.output[0])
        if add is not None and add.op_type in ("Add", "Sub"):
            value = self.constant_operand(add, mul.output[0], None)
            if value is not None and (add.op_type == "Add" or add.input[0] == mul.output[0]):
                shift = value if add.op_type == "Add" else -value
                chain.append(add)
                last = add
        channels = max(channels, shift.size)
        if any(v.size not in (1, channels) for v in (mean, scale, shift)):
            return None
        scale = scale if mul.op_type == "Mul" else (1.0 / scale.astype(np.float64))

        def vector(v):
            return np.broadcast_to(np.asarray(v, np.float32).reshape(-1), (channels,)).copy()

        base = node_name(mul)
        inputs = [x, self.fresh(f"{base}.gamma", vector(scale)),
                  self.fresh(f"{base}.beta", vector(shift)),
                  self.fresh(f"{base}.mean", vector(mean)),
                  self.fresh(f"{base}.var", np.full(channels, UNIT_VARIANCE, np.float32))]
        for node in chain:
            self.removed.add(id(node))
        return onnx.helper.make_node("BatchNormalization", inputs, [last.output[0]], name=base,
                                     epsilon=float(EPSILON))

    def run(self) -> bool:
        changed = False
        for node in self.graph.node:
            if node.op_type == "Conv" and id(node) not in self.removed:
                before = len(self.removed)
                self.conv_bias(node)
                changed |= len(self.removed) != before
        fused: dict[int, onnx.NodeProto] = {}
        for node in self.graph.node:
            if node.op_type == "Sub" and id(node) not in self.removed:
                bn = self.batch_norm(node)
                if bn is not None:
                    fused[id(node)] = bn
        if not changed and not fused:
            return False
        nodes = []
        for node in self.graph.node:
            if id(node) in fused:
                nodes.append(fused[id(node)])
            elif id(node) not in self.removed:
                nodes.append(node)
        replace_nodes(self.graph, nodes)
        self.graph.initializer.extend(self.new_initializers)
        return True


def fuse_affine(model: onnx.ModelProto) -> None:
    """Fuse the per-channel chains of the module docstring, in place."""
    _Fuser(model).run()  # the constants it replaced go in prune_unused
