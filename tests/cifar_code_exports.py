"""The PyTorch CIFAR code's ResNet18..152 and PreActResNet18 as PyTorch's exporters write
them, built with onnx.helper (no torch): the literature's "ResNet-18 on CIFAR-10".

That code (models/resnet.py, models/preact_resnet.py): conv1 3x3 64 stride 1 pad 1 + bn1 +
ReLU (PreActResNet: conv1 alone), no max pool, `layer1..layer4` of BasicBlock / Bottleneck
with planes 64, 128, 256, 512 and strides 1, 2, 2, 2, the Bottleneck's stride on conv2 (its
3x3), `shortcut` = 1x1 conv + BN where the shape changes (PreActBlock: the conv alone, on
relu(bn1(x))), then `F.avg_pool2d(out, 4)`, `out.view(out.size(0), -1)` and `linear`.

That head is AveragePool kernel 4 stride 4, then the view as each export writes it:
- "torchscript" with a fixed batch (no dynamic_axes): a Constant shape [1, 512 * expansion]
  and Reshape; with `dynamic_batch` (dynamic_axes on the batch) the size is computed:
  Shape -> Gather(0) -> Unsqueeze -> Concat with [-1] -> Reshape, as torch 2.x writes it;
- "dynamo": the shape as an initializer, Reshape allowzero=1;
- "bn" (do_constant_folding=False): Constant 1 and Constant -1, each Unsqueezed, Concat.
"torchscript" and "dynamo" fold each BatchNorm into its convolution, "bn" keeps
BatchNormalization nodes (the only form the pre-activation net takes here, as its
BatchNorms come before their convolutions).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper
from torchvision_exports import EPS, _Writer

LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
          152: ("bottleneck", (3, 8, 36, 3))}


def _bare_conv(e: _Writer, x: str, scope: str, param: str, c_in: int, c_out: int, k: int,
               stride: int, pad: int) -> str:
    weight = e.rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / (c_in * k * k))
    return e.node("Conv", scope, "conv2d", [x, e.init(f"{param}.weight", weight)],
                  dilations=[1, 1], group=1, kernel_shape=[k, k], pads=[pad] * 4,
                  strides=[stride, stride])


def _bn(e: _Writer, x: str, scope: str, param: str, c: int) -> str:
    bn = e.random_bn(c)
    inputs = [x] + [e.init(f"{param}.{field}", value) for field, value in
                    (("weight", bn.gamma), ("bias", bn.beta), ("running_mean", bn.mean),
                     ("running_var", bn.var))]
    return e.node("BatchNormalization", scope, "batch_norm", inputs, epsilon=EPS, momentum=0.9,
                  training_mode=0)


def _block(e: _Writer, x: str, block: str, c_in: int, planes: int, stride: int, scope: str,
           param: str, damp: float) -> tuple[str, int]:
    """BasicBlock or Bottleneck: the branch, the shortcut, the sum, the ReLU."""
    out_c = planes * (4 if block == "bottleneck" else 1)
    if block == "basic":
        units = [(planes, 3, stride, 1), (out_c, 3, 1, 1)]
    else:
        units = [(planes, 1, 1, 0), (planes, 3, stride, 1), (out_c, 1, 1, 0)]
    y, c = x, c_in
    for u, (channels, k, s, p) in enumerate(units, start=1):
        last = u == len(units)
        y = e.conv_bn(y, f"{scope}/conv{u}", f"{param}.conv{u}", c, channels, k, s, p,
                      gamma_scale=damp if last else 1.0, bn_scope=f"{scope}/bn{u}",
                      bn_param=f"{param}.bn{u}")
        if not last:
            y = e.relu(y, f"{scope}/Relu" + ("" if u == 1 else f"_{u - 1}"))
        c = channels
    shortcut = x
    if stride != 1 or c_in != out_c:
        shortcut = e.conv_bn(x, f"{scope}/shortcut/shortcut.0", f"{param}.shortcut.0", c_in,
                             out_c, 1, stride, 0, bn_scope=f"{scope}/shortcut/shortcut.1",
                             bn_param=f"{param}.shortcut.1")
    y = e.node("Add", f"{scope}", "add", [y, shortcut])
    return e.relu(y, f"{scope}/Relu_{len(units) - 1}"), out_c


def _preact_block(e: _Writer, x: str, c_in: int, planes: int, stride: int, scope: str,
                  param: str) -> tuple[str, int]:
    """PreActBlock: relu(bn1(x)) feeds conv1 and the projection; the sum is left bare."""
    out = e.relu(_bn(e, x, f"{scope}/bn1", f"{param}.bn1", c_in), f"{scope}/Relu")
    shortcut = x
    if stride != 1 or c_in != planes:
        shortcut = _bare_conv(e, out, f"{scope}/shortcut/shortcut.0", f"{param}.shortcut.0",
                              c_in, planes, 1, stride, 0)
    y = _bare_conv(e, out, f"{scope}/conv1", f"{param}.conv1", c_in, planes, 3, stride, 1)
    y = e.relu(_bn(e, y, f"{scope}/bn2", f"{param}.bn2", planes), f"{scope}/Relu_1")
    y = _bare_conv(e, y, f"{scope}/conv2", f"{param}.conv2", planes, planes, 3, 1, 1)
    return e.node("Add", scope, "add", [y, shortcut]), planes


def _constant(e: _Writer, scope: str, value) -> str:
    return e.node("Constant", scope, "constant", [], value=onnx.numpy_helper.from_array(
        np.asarray(value, np.int64)))


def _view(e: _Writer, x: str, channels: int, exporter: str, dynamic_batch: bool) -> str:
    """out.view(out.size(0), -1) as each exporter writes it (see the module docstring)."""
    if exporter == "dynamo":
        shape = e.init(f"val_{e.next_id()}", np.array([1, channels], np.int64), np.int64)
        return e.node("Reshape", "", "view", [x, shape], allowzero=1)
    if exporter == "bn":
        parts = [e.node("Unsqueeze", f"/Unsqueeze_{i}", "unsqueeze",
                        [_constant(e, f"/Constant_{i}", v), _constant(e, f"/Axes_{i}", [0])])
                 for i, v in enumerate((1, -1))]
    elif dynamic_batch:
        size = e.node("Gather", "/Gather", "gather",
                      [e.node("Shape", "/Shape", "shape", [x]), _constant(e, "/Constant", 0)],
                      axis=0)
        parts = [e.node("Unsqueeze", "/Unsqueeze", "unsqueeze", [size, _constant(e, "/Axes", [0])]),
                 _constant(e, "/Constant_1", [-1])]
    else:
        return e.node("Reshape", "/Reshape", "view", [x, _constant(e, "/Constant", [1, channels])],
                      allowzero=0)
    shape = e.node("Concat", "/Concat", "concat", parts, axis=0)
    return e.node("Reshape", "/Reshape", "view", [x, shape], allowzero=0)


def cifar_code_resnet(depth: int = 18, exporter: str = "torchscript", *, preact: bool = False,
                      num_classes: int = 10, seed: int = 0,
                      dynamic_batch: bool = False) -> onnx.ModelProto:
    """ResNet{depth}() (or PreActResNet18() with `preact`) of the PyTorch CIFAR code, exported
    on 32x32 images with a batch of 1 (torchscript: or a symbolic one, `dynamic_batch`)."""
    block, layers = LAYERS[depth]
    if preact and (block, exporter) != ("basic", "bn"):
        raise ValueError("PreActResNet: basic blocks, exporter 'bn' (its BN precede convs)")
    e = _Writer(exporter, seed)
    image = "x" if exporter == "dynamo" else "input"
    if preact:
        x = _bare_conv(e, image, "/conv1", "conv1", 3, 64, 3, 1, 1)
    else:
        x = e.conv_bn(image, "/conv1", "conv1", 3, 64, 3, 1, 1, bn_scope="/bn1", bn_param="bn1")
        x = e.relu(x, "/Relu")
    c_in, damp = 64, 1 / np.sqrt(sum(layers))
    for i, count in enumerate(layers):
        for j in range(count):
            stride = 2 if (i > 0 and j == 0) else 1
            scope, param = f"/layer{i + 1}/layer{i + 1}.{j}", f"layer{i + 1}.{j}"
            if preact:
                x, c_in = _preact_block(e, x, c_in, 64 * 2 ** i, stride, scope, param)
            else:
                x, c_in = _block(e, x, block, c_in, 64 * 2 ** i, stride, scope, param, damp)
    x = e.node("AveragePool", "/AveragePool", "avg_pool2d", [x], ceil_mode=0,
               count_include_pad=1, kernel_shape=[4, 4], pads=[0, 0, 0, 0], strides=[4, 4])
    x = _view(e, x, c_in, exporter, dynamic_batch and exporter == "torchscript")
    weight = e.rng.standard_normal((num_classes, c_in)) / np.sqrt(c_in)
    x = e.node("Gemm", "/linear", "linear",
               [x, e.init("linear.weight", weight),
                e.init("linear.bias", e.rng.normal(0.0, 0.1, num_classes))],
               alpha=1.0, beta=1.0, transB=1)
    final = "linear" if exporter == "dynamo" else "output"
    e.nodes[-1].output[0] = final
    batch = "batch_size" if dynamic_batch else 1
    graph = helper.make_graph(
        e.nodes, "main_graph",
        [helper.make_tensor_value_info(image, TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info(final, TensorProto.FLOAT, [batch, num_classes])],
        e.inits)
    opset, ir_version = (18, 10) if exporter == "dynamo" else (17, 8)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pytorch", producer_version="2.5.0")
    model.ir_version = ir_version
    onnx.checker.check_model(model, full_check=True)
    return model


def learned_parameters(model: onnx.ModelProto) -> int:
    """torch's sum(p.numel() for p in net.parameters()) of the unfolded ("bn") export: every
    initializer but the BatchNorm statistics and the head's shape."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if not t.name.endswith(("running_mean", "running_var")) and t.data_type
               == TensorProto.FLOAT)
