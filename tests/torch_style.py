"""ONNX graphs built by hand with onnx.helper in the style of a PyTorch (torchvision) export.

Names like "/layer1/layer1.0/conv1/Conv", initializers like "layer1.0.bn1.running_mean",
BatchNormalization separate from its Conv, the downsample branch after the main branch, a
Flatten + Gemm head and no Softmax: what netgen's importer and diff meet from other tools.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3))}


class _Export:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op: str, scope: str, inputs: list[str], **attrs) -> str:
        name = f"{scope}/{op}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv(self, x: str, scope: str, param: str, c_in: int, c_out: int, k: int, stride: int,
             pad: int) -> str:
        std = np.sqrt(2.0 / (c_in * k * k))
        w = self.init(f"{param}.weight", self.rng.standard_normal((c_out, c_in, k, k)) * std)
        return self.node("Conv", scope, [x, w], kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, dilations=[1, 1], group=1)

    def bn(self, x: str, scope: str, param: str, c: int, gamma: float = 1.0) -> str:
        inputs = [x,
                  self.init(f"{param}.weight", gamma * (1 + 0.1 * self.rng.standard_normal(c))),
                  self.init(f"{param}.bias", 0.1 * self.rng.standard_normal(c)),
                  self.init(f"{param}.running_mean", 0.1 * self.rng.standard_normal(c)),
                  self.init(f"{param}.running_var", 1 + 0.1 * self.rng.random(c))]
        return self.node("BatchNormalization", scope, inputs, epsilon=1e-5, momentum=0.9)


def torch_resnet(depth: int = 18, num_classes: int = 1000, input_size: int = 224,
                 maxpool: tuple[int, int, int, int] = (3, 2, 0, 1), seed: int = 0,
                 stages: tuple[int, ...] | None = None, opset: int = 17) -> onnx.ModelProto:
    """A torchvision-style ResNet (stride on the 3x3, projection shortcuts where shapes
    change). maxpool = (kernel, stride, pad, ceil_mode); torchvision's own is (3, 2, 1, 0),
    which Caffe's rounding cannot express, so the default is the MSRA pool1 with ceil_mode."""
    block, layout = LAYOUTS[depth]
    layout = stages or layout
    e = _Export(seed)
    x = e.conv("input", "/conv1", "conv1", 3, 64, 7, 2, 3)
    x = e.bn(x, "/bn1", "bn1", 64)
    x = e.node("Relu", "/relu", [x])
    k, s, p, ceil = maxpool
    x = e.node("MaxPool", "/maxpool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
               ceil_mode=ceil)
    c_in = 64
    blocks = sum(layout)
    for i, count in enumerate(layout):
        width = 64 * 2 ** i
        c_out = width * (4 if block == "bottleneck" else 1)
        for j in range(count):
            stride = 2 if (i > 0 and j == 0) else 1
            scope, param = f"/layer{i + 1}/layer{i + 1}.{j}", f"layer{i + 1}.{j}"
            identity = x
            if block == "basic":
                units = [(width, 3, stride, 1), (c_out, 3, 1, 1)]
            else:
                units = [(width, 1, 1, 0), (width, 3, stride, 1), (c_out, 1, 1, 0)]
            y, c = x, c_in
            for u, (channels, kk, ss, pp) in enumerate(units, start=1):
                y = e.conv(y, f"{scope}/conv{u}", f"{param}.conv{u}", c, channels, kk, ss, pp)
                last = u == len(units)
                y = e.bn(y, f"{scope}/bn{u}", f"{param}.bn{u}", channels,
                         gamma=1 / np.sqrt(blocks) if last else 1.0)
                if not last:
                    y = e.node("Relu", f"{scope}/relu" + ("" if u == 1 else f"_{u - 1}"), [y])
                c = channels
            if stride != 1 or c_in != c_out:
                identity = e.conv(x, f"{scope}/downsample/downsample.0",
                                  f"{param}.downsample.0", c_in, c_out, 1, stride, 0)
                identity = e.bn(identity, f"{scope}/downsample/downsample.1",
                                f"{param}.downsample.1", c_out)
            y = e.node("Add", scope, [y, identity])
            x = e.node("Relu", f"{scope}/relu_{len(units) - 1}", [y])
            c_in = c_out
    x = e.node("GlobalAveragePool", "/avgpool", [x])
    x = e.node("Flatten", "", [x], axis=1)
    w = e.init("fc.weight", e.rng.standard_normal((num_classes, c_in)) / np.sqrt(c_in))
    b = e.init("fc.bias", 0.01 * e.rng.standard_normal(num_classes))
    x = e.node("Gemm", "/fc", [x, w, b], alpha=1.0, beta=1.0, transB=1)
    e.nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        e.nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch_size", 3, input_size, input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", num_classes])],
        e.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pytorch", producer_version="2.3.0")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
