"""Hand-written CIFAR ResNets (akamaster / kuangliu style, option A shortcuts) as PyTorch's
two exporters write them, built node by node with onnx.helper.

The shapes are the exporters' own (see the README's list of idioms):

- TorchScript (`dynamo=False`, symbolic batch): `out.view(out.size(0), -1)` is Shape ->
  Gather(0) -> Unsqueeze (axes as an input) -> Concat with [-1] -> Reshape; `x[:, :, ::2,
  ::2]` is two Slice nodes with Constant bounds (ends INT64_MAX); `F.pad(x, (0, 0, 0, 0, a,
  b))` is a Pad whose pads come out of Constant -> Concat with ConstantOfShape -> Reshape(-1,
  2) -> Slice(step -1) -> Transpose -> Reshape(-1) -> Cast(INT64), with a Constant 0.0 value;
  a float -> float Cast and an Identity on the way.
- TorchScript without constant folding: the bounds are Unsqueeze of scalar Constants, and
  F.pad's [0] * (2 * rank - len(pad)) is Mul, Shape, Gather, Sub.
- dynamo (fixed batch 1): one Reshape(allowzero=1) of a constant shape, node_slice_1 and
  node_slice_2 with initializer bounds, a Pad of constant pads.

Both end in F.avg_pool2d(out, out.size()[3]): an AveragePool whose kernel is the whole map.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64_MAX = 2**63 - 1


class _Graph:
    def __init__(self, style: str, seed: int):
        self.style = style
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, op: str) -> str:
        self.count += 1
        return f"/{op}_{self.count}" if self.torchscript else f"node_{op.lower()}_{self.count}"

    @property
    def torchscript(self) -> bool:
        return self.style.startswith("torchscript")

    @property
    def folded(self) -> bool:
        """The TorchScript exporter's constant folding (do_constant_folding=True) ran."""
        return self.style != "torchscript-nofold"

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        name = name or self.name(op)
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(self, value: np.ndarray, what: str) -> str:
        """A Constant node (TorchScript) or an initializer (dynamo)."""
        if self.torchscript:
            return self.node("Constant", [], name=self.name(f"Constant_{what}"),
                             value=numpy_helper.from_array(np.asarray(value), "value"))
        name = f"val_{what}_{self.count}"
        self.count += 1
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, param: str, c_in: int, c_out: int, stride: int) -> str:
        w = self.weight(f"{param}.weight", self.rng.standard_normal((c_out, c_in, 3, 3))
                        * np.sqrt(2.0 / (9 * c_in)))
        b = self.weight(f"{param}.bias", 0.1 * self.rng.standard_normal(c_out))
        return self.node("Conv", [x, w, b], kernel_shape=[3, 3], strides=[stride, stride],
                         pads=[1, 1, 1, 1], dilations=[1, 1], group=1)

    def subsample(self, x: str) -> str:
        """x[:, :, ::2, ::2]: one Slice per axis."""
        for axis in (2, 3):
            inputs = [x] + [self.bound(v, what) for v, what in
                            ((0, "starts"), (INT64_MAX, "ends"), (axis, "axes"), (2, "steps"))]
            name = f"/Slice_{self.count}" if self.torchscript else None
            x = self.node("Slice", inputs, name=name or f"node_slice_{axis - 1}_{self.count}")
        return x

    def bound(self, value: int, what: str) -> str:
        """A 1-D bound: a constant, or without constant folding an Unsqueeze of a scalar."""
        if self.folded:
            return self.const(np.array([value], np.int64), what)
        return self.node("Unsqueeze", [self.const(np.array(value, np.int64), what),
                                       self.const(np.array([0], np.int64), "axis0")])

    def extension(self, torch_pads: str) -> str:
        """[0] * (2 * rank - len(pads)) for F.pad: a constant [2], or computed from the
        pads' own shape without constant folding."""
        if self.folded:
            return self.const(np.array([2], np.int64), "ext")
        twice = self.node("Mul", [self.const(np.array(2, np.int64), "two"),
                                  self.const(np.array(4, np.int64), "rank")])
        length = self.node("Gather", [self.node("Shape", [torch_pads]),
                                      self.const(np.array([0], np.int64), "first")], axis=0)
        return self.node("Sub", [twice, length])

    def pad_channels(self, x: str, before: int, after: int) -> str:
        """F.pad(x, (0, 0, 0, 0, before, after))."""
        if self.style == "dynamo":
            pads = self.const(np.array([0, before, 0, 0, 0, after, 0, 0], np.int64), "pads")
            return self.node("Pad", [x, pads], mode="constant")
        torch_pads = self.const(np.array([0, 0, 0, 0, before, after], np.int64), "pad")
        extension = self.node("ConstantOfShape", [self.extension(torch_pads)],
                              value=numpy_helper.from_array(np.array([0], np.int64), "value"))
        pairs = self.node("Concat", [torch_pads, extension], axis=0)
        pairs = self.node("Reshape", [pairs, self.const(np.array([-1, 2], np.int64), "pairs")])
        flipped = self.node("Slice", [pairs] + [self.const(np.array([v], np.int64), w) for v, w in
                                                ((-1, "s"), (-INT64_MAX, "e"), (0, "a"), (-1, "st"))])
        moved = self.node("Transpose", [flipped], perm=[1, 0])
        flat = self.node("Reshape", [moved, self.const(np.array([-1], np.int64), "flat")])
        pads = self.node("Cast", [flat], to=TensorProto.INT64)
        value = self.const(np.array(0.0, np.float32), "value")
        return self.node("Pad", [x, pads, value], mode="constant")

    def flatten_head(self, x: str, batch_dim: int) -> str:
        if self.style == "dynamo":
            return self.node("Reshape", [x, self.const(np.array([batch_dim, -1], np.int64), "view")],
                             allowzero=1)
        shape = self.node("Shape", [x])
        first = self.node("Gather", [shape, self.const(np.array(0, np.int64), "index")], axis=0)
        first = self.node("Unsqueeze", [first, self.const(np.array([0], np.int64), "axes")])
        target = self.node("Concat", [first, self.const(np.array([-1], np.int64), "rest")], axis=0)
        return self.node("Reshape", [x, target])


def cifar_resnet(style: str = "torchscript", blocks: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                 input_size: int = 32, num_classes: int = 10, seed: int = 0,
                 pad_split: tuple[float, float] = (0.5, 0.5)) -> onnx.ModelProto:
    """A CIFAR ResNet (6 * blocks + 2 layers) with option A shortcuts, in `style`
    ("torchscript", "torchscript-nofold" (do_constant_folding=False) or "dynamo").
    pad_split shares the new channels of a widening between before and after the input
    (akamaster's planes // 4 on each side: (0.5, 0.5))."""
    e = _Graph(style, seed)
    x = e.conv("input", "conv1", 3, widths[0], 1)
    x = e.node("Relu", [x])
    if e.torchscript:
        x = e.node("Cast", [x], to=TensorProto.FLOAT)  # a float -> float Cast
        x = e.node("Identity", [x])
    c_in, size = widths[0], input_size
    for i, width in enumerate(widths):
        for j in range(blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            param = f"layer{i + 1}.{j}"
            y = e.node("Relu", [e.conv(x, f"{param}.conv1", c_in, width, stride)])
            y = e.conv(y, f"{param}.conv2", width, width, 1)
            shortcut = x
            if stride != 1 or c_in != width:
                if stride != 1:
                    shortcut = e.subsample(shortcut)
                extra = width - c_in
                before = int(round(extra * pad_split[0] / sum(pad_split)))
                shortcut = e.pad_channels(shortcut, before, extra - before)
            x = e.node("Relu", [e.node("Add", [y, shortcut])])
            c_in = width
            size = (size + 1) // 2 if stride == 2 else size
    x = e.node("AveragePool", [x], kernel_shape=[size, size], strides=[size, size])
    x = e.flatten_head(x, 1)
    w = e.weight("linear.weight", e.rng.standard_normal((num_classes, c_in)) * 0.1)
    b = e.weight("linear.bias", 0.1 * e.rng.standard_normal(num_classes))
    x = e.node("Gemm", [x, w, b], alpha=1.0, beta=1.0, transB=1)
    batch = "batch_size" if e.torchscript else 1
    opset = 17 if e.torchscript else 18
    graph = helper.make_graph(
        e.nodes, f"cifar_{style}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, input_size, input_size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, num_classes])], e.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
