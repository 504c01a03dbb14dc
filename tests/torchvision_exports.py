"""torchvision ResNets as PyTorch's exporters write them, built with onnx.helper (no torch).

The shapes follow issue 10's "The files, exactly as they come":

- ``exporter="torchscript"`` (``torch.onnx.export(..., dynamo=False)``, eval mode): opset 17,
  IR 8, BatchNorm folded into every Conv (weight and bias initializers ``onnx::Conv_<n>``),
  ``fc.weight``/``fc.bias``, node names ``/layer1/layer1.0/conv1/Conv`` with outputs
  ``/layer1/layer1.0/conv1/Conv_output_0``, MaxPool k3 s2 p1 ``ceil_mode=0`` (floor),
  GlobalAveragePool -> Flatten(axis=1) -> Gemm(transB=1), a symbolic batch, output ``output``.
- ``exporter="dynamo"`` (``dynamo=True``): opset 18, IR 10, BatchNorm folded with biases named
  ``conv1.weight_bias``, node names ``node_Conv_<n>`` with aten-style output names
  (``conv2d_3``, ``relu_2``, ``add_1``), ``auto_pad="NOTSET"`` written out,
  ReduceMean(keepdims=1, axes as an input) -> Reshape(allowzero=1), a fixed batch,
  input ``x``, output ``linear``.
- ``exporter="bn"`` (``do_constant_folding=False`` / ``TrainingMode.PRESERVE``): opset 17,
  BatchNormalization nodes (epsilon 1e-5, momentum 0.9, training_mode 0) after Convs without
  bias, initializers ``layer1.0.bn1.running_mean``, and Identity nodes (one on a parameter,
  one on an activation), as that exporter leaves them.
- wild variations on any of them: ``head="matmul"`` (MatMul of the transposed weight + Add),
  ``dropout=True`` (an inference Dropout before the classifier), ``softmax=True`` (a trailing
  Softmax), ``infer_shapes=True`` (value_info filled by ONNX's shape inference).

The network is torchvision's ``ResNet`` class: v1.5 (the stride of a bottleneck's first block
sits on its 3x3 conv), downsample = 1x1 conv of the block's stride + BN, BasicBlock for 18/34,
and ``groups``/``width_per_group`` exactly as torchvision computes the bottleneck's width
(``int(planes * width_per_group / 64) * groups``), so the ResNeXt and Wide ResNet exports
come out of the same function. Weights are random but seeded; BN statistics are not trivial
(means, variances, scales and shifts all away from 0/1), so a folding or unfolding mistake
shows in the numbers. ``reference_forward`` runs ONNX Runtime on the fixture itself,
independent of netgen's IR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPS = 1e-5

# torchvision.models.resnet's constructors: block, layers, groups, width_per_group.
ARCHS: dict[str, tuple[str, tuple[int, ...], int, int]] = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23, 3), 1, 128),
}
DEPTHS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}

EXPORTERS = ("torchscript", "dynamo", "bn")


@dataclass
class _BN:
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray


class _Writer:
    """Collects nodes and initializers, naming them as the chosen exporter does."""

    def __init__(self, exporter: str, seed: int):
        self.exporter = exporter
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.counter = 0  # torchscript's onnx::Conv_<n>, dynamo's node_<Op>_<n>
        self.aten: dict[str, int] = {}  # dynamo's output names: conv2d, conv2d_1, ...

    # ------------------------------------------------------------ naming

    def next_id(self) -> int:
        self.counter += 1
        return 100 + self.counter

    def init(self, name: str, array: np.ndarray, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def _aten_name(self, aten: str) -> str:
        n = self.aten.get(aten, 0)
        self.aten[aten] = n + 1
        return aten if n == 0 else f"{aten}_{n}"

    def node(self, op: str, scope: str, aten: str, inputs: list[str], **attrs) -> str:
        """One node: torchscript names it `{scope}/{op}`, dynamo `node_{op}_{n}`."""
        if self.exporter == "dynamo":
            name, out = f"node_{op}_{self.next_id()}", self._aten_name(aten)
        else:
            name = f"{scope}/{op}"
            out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    # ------------------------------------------------------------ layers

    def random_bn(self, c: int, gamma_scale: float = 1.0) -> _BN:
        r = self.rng
        return _BN(gamma=gamma_scale * r.uniform(0.6, 1.4, c), beta=r.normal(0.0, 0.2, c),
                   mean=r.normal(0.0, 0.3, c), var=r.uniform(0.5, 2.0, c))

    def conv_bn(self, x: str, scope: str, param: str, c_in: int, c_out: int, k: int, stride: int,
                pad: int, groups: int = 1, gamma_scale: float = 1.0, bn_scope: str = "",
                bn_param: str = "", bias: bool = False) -> str:
        """Conv (no bias, as torchvision's, unless `bias`) + BatchNorm, folded or kept."""
        std = np.sqrt(2.0 / (c_in // groups * k * k))
        weight = self.rng.standard_normal((c_out, c_in // groups, k, k)) * std
        conv_bias = self.rng.normal(0.0, 0.2, c_out) if bias else np.zeros(c_out)
        bn = self.random_bn(c_out, gamma_scale)
        attrs = dict(dilations=[1, 1], group=groups, kernel_shape=[k, k], pads=[pad] * 4,
                     strides=[stride, stride])
        if self.exporter == "dynamo":
            attrs["auto_pad"] = "NOTSET"
        if self.exporter == "bn":
            w = self.init(f"{param}.weight", weight)
            b = [self.init(f"{param}.bias", conv_bias)] if bias else []
            y = self.node("Conv", scope, "conv2d", [x, w, *b], **attrs)
            inputs = [y] + [self.init(f"{bn_param}.{field}", value) for field, value in
                            (("weight", bn.gamma), ("bias", bn.beta), ("running_mean", bn.mean),
                             ("running_var", bn.var))]
            return self.node("BatchNormalization", bn_scope, "batch_norm", inputs, epsilon=EPS,
                             momentum=0.9, training_mode=0)
        # What torch's constant folding computes: W * g / sqrt(v + eps), b - m * g / sqrt(v + eps).
        factor = bn.gamma / np.sqrt(bn.var + EPS)
        folded_w = weight * factor[:, None, None, None]
        folded_b = bn.beta + (conv_bias - bn.mean) * factor
        if self.exporter == "dynamo":
            w = self.init(f"{param}.weight", folded_w)
            b = self.init(f"{param}.weight_bias", folded_b)
        else:
            w = self.init(f"onnx::Conv_{self.next_id()}", folded_w)
            b = self.init(f"onnx::Conv_{self.next_id()}", folded_b)
        return self.node("Conv", scope, "conv2d", [x, w, b], **attrs)

    def relu(self, x: str, scope: str) -> str:
        return self.node("Relu", scope, "relu", [x])


def torchvision_resnet(arch: str | int = "resnet18", exporter: str = "torchscript", *,
                       num_classes: int = 1000, input_size: int = 224, batch: int = 1,
                       seed: int = 0, head: str = "gemm", dropout: bool = False,
                       softmax: bool = False, infer_shapes: bool = False,
                       output: str | None = None, groups: int | None = None,
                       width_per_group: int | None = None,
                       layers: tuple[int, ...] | None = None, stem: str = "torchvision",
                       stride_in: str = "3x3", conv1_bias: bool = False) -> onnx.ModelProto:
    """An export of torchvision's `arch` (a name of ARCHS or a depth of DEPTHS).

    `groups`, `width_per_group` and `layers` override the constructor's arguments, as
    torchvision's ResNet(block, layers, groups=..., width_per_group=...) takes them.
    The last three describe the PyTorch ports of MSRA's Caffe models instead of torchvision
    (e.g. ruotianluo/pytorch-resnet): `stem="caffe"` pools 3x3 stride 2 with no pad and
    ceil_mode=True as Caffe does, `stride_in="1x1"` puts a bottleneck's stride on its first
    1x1 conv (ResNet v1), `conv1_bias` gives conv1 a bias before its BN (MSRA's ResNet-50).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}, expected one of {EXPORTERS}")
    if head not in ("gemm", "matmul"):
        raise ValueError(f"head {head!r}, expected 'gemm' or 'matmul'")
    arch = DEPTHS[arch] if isinstance(arch, int) else arch
    block, default_layers, default_groups, default_wpg = ARCHS[arch]
    groups = default_groups if groups is None else groups
    width_per_group = default_wpg if width_per_group is None else width_per_group
    layers = default_layers if layers is None else tuple(layers)
    if block == "basic" and (groups != 1 or width_per_group != 64):
        raise ValueError("BasicBlock only supports groups=1 and base_width=64")  # torchvision's
    e = _Writer(exporter, seed)
    image = "x" if exporter == "dynamo" else "input"

    if stem not in ("torchvision", "caffe") or stride_in not in ("1x1", "3x3"):
        raise ValueError(f"stem {stem!r} / stride_in {stride_in!r}")
    x = e.conv_bn(image, "/conv1", "conv1", 3, 64, 7, 2, 3, bn_scope="/bn1", bn_param="bn1",
                  bias=conv1_bias)
    x = e.relu(x, "/relu")
    if exporter == "bn":  # the activation Identity torch leaves without constant folding
        x = e.node("Identity", "", "identity", [x])
    pool = dict(ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                strides=[2, 2])
    if stem == "caffe":
        pool.update(ceil_mode=1, pads=[0, 0, 0, 0])
    if exporter == "dynamo":
        pool["auto_pad"] = "NOTSET"
    x = e.node("MaxPool", "/maxpool", "max_pool2d", [x], **pool)

    expansion = 4 if block == "bottleneck" else 1
    total_blocks = sum(layers)
    inplanes = 64
    for i, count in enumerate(layers):
        planes = 64 * 2 ** i
        for j in range(count):
            stride = 2 if (i > 0 and j == 0) else 1
            scope, param = f"/layer{i + 1}/layer{i + 1}.{j}", f"layer{i + 1}.{j}"
            out_c = planes * expansion
            if block == "basic":
                units = [(planes, 3, stride, 1, 1), (out_c, 3, 1, 1, 1)]
            else:
                width = int(planes * (width_per_group / 64.0)) * groups
                s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
                units = [(width, 1, s1, 0, 1), (width, 3, s3, 1, groups), (out_c, 1, 1, 0, 1)]
            y, c = x, inplanes
            for u, (channels, k, s, p, g) in enumerate(units, start=1):
                last = u == len(units)
                # A small last-BN scale keeps 152-layer activations of random weights finite,
                # as zero_init_residual would, without making the branch vanish.
                y = e.conv_bn(y, f"{scope}/conv{u}", f"{param}.conv{u}", c, channels, k, s, p, g,
                              gamma_scale=(1 / np.sqrt(total_blocks)) if last else 1.0,
                              bn_scope=f"{scope}/bn{u}", bn_param=f"{param}.bn{u}")
                if not last:
                    y = e.relu(y, f"{scope}/relu" + ("" if u == 1 else f"_{u - 1}"))
                c = channels
            identity = x
            if stride != 1 or inplanes != out_c:
                identity = e.conv_bn(x, f"{scope}/downsample/downsample.0",
                                     f"{param}.downsample.0", inplanes, out_c, 1, stride, 0,
                                     bn_scope=f"{scope}/downsample/downsample.1",
                                     bn_param=f"{param}.downsample.1")
            y = e.node("Add", scope, "add", [y, identity])
            x = e.relu(y, f"{scope}/relu_{len(units) - 1}")
            inplanes = out_c

    if exporter == "dynamo":
        axes = e.init(f"val_{e.next_id()}", np.array([-1, -2]), np.int64)
        x = e.node("ReduceMean", "", "mean", [x, axes], keepdims=1)
        shape = e.init(f"val_{e.next_id()}", np.array([batch, inplanes]), np.int64)
        x = e.node("Reshape", "", "view", [x, shape], allowzero=1)
    else:
        x = e.node("GlobalAveragePool", "/avgpool", "avgpool", [x])
        x = e.node("Flatten", "", "flatten", [x], axis=1)
    if dropout:
        x = e.node("Dropout", "/dropout", "dropout", [x])
    fc_w = e.rng.standard_normal((num_classes, inplanes)) / np.sqrt(inplanes)
    fc_b = e.rng.normal(0.0, 0.1, num_classes)
    if head == "gemm":
        w = e.init("fc.weight", fc_w)
        if exporter == "bn":  # the parameter Identity of an unfolded export
            w = e.node("Identity", "/fc", "identity", [w])
        x = e.node("Gemm", "/fc", "linear", [x, w, e.init("fc.bias", fc_b)], alpha=1.0, beta=1.0,
                   transB=1)
    else:
        w = e.init(f"onnx::MatMul_{e.next_id()}", fc_w.T)
        x = e.node("MatMul", "/fc", "matmul", [x, w])
        x = e.node("Add", "/fc", "linear", [e.init("fc.bias", fc_b), x])
    if softmax:
        x = e.node("Softmax", "/softmax", "softmax", [x], axis=1)

    final = output or ("linear" if exporter == "dynamo" else "output")
    _rename(e.nodes, x, final)
    batch_dim: int | str = batch if exporter == "dynamo" else "batch_size"
    graph = helper.make_graph(
        e.nodes, "main_graph",
        [helper.make_tensor_value_info(image, TensorProto.FLOAT,
                                       [batch_dim, 3, input_size, input_size])],
        [helper.make_tensor_value_info(final, TensorProto.FLOAT, [batch_dim, num_classes])],
        e.inits)
    opset, ir_version = (18, 10) if exporter == "dynamo" else (17, 8)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pytorch", producer_version="2.5.0")
    model.ir_version = ir_version
    if infer_shapes:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def _rename(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    for node in nodes:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def image_size(model: onnx.ModelProto) -> int:
    return model.graph.input[0].type.tensor_type.shape.dim[2].dim_value


def random_input(model: onnx.ModelProto, batch: int = 1, seed: int = 0) -> np.ndarray:
    """A batch of random images for the model's input (its fixed batch if it has one)."""
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    n = dim0.dim_value if dim0.HasField("dim_value") else batch
    size = image_size(model)
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def reference_forward(model: onnx.ModelProto, batch: np.ndarray) -> np.ndarray:
    """The fixture's own output under ONNX Runtime (independent of netgen's IR)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {model.graph.input[0].name: batch})[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| over max |want|: the figure issue 10 bounds by 1e-4."""
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(float(np.max(np.abs(want))),
                                                                     1e-30))
