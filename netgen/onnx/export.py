"""Graph IR + weights -> ONNX, translating Caffe's semantics into standard ONNX ops.

The emitter reads the IR, never prototxt text. What it translates:

- In-place tops. Caffe rewrites a blob in place (BatchNorm, Scale, ReLU on `conv1`); ONNX
  tensors are written once. Every write gets its own tensor name: the first write keeps the
  blob's name, a later in-place write takes the writing layer's name (`conv1_relu`), or
  `blob/layer` where that name is taken. `tensor_plan` exposes the naming so a checker can map
  every ONNX tensor back to the IR shape it must have.
- BatchNorm + the in-place Scale after it become one BatchNormalization (inference form):
  mean = blob0 / factor, var = blob1 / factor (0 when the factor is 0, as Caffe does), gamma
  and beta from the Scale (constants 1 and 0 when no Scale follows).
- Pooling rounds up in Caffe. Where that differs from rounding down, `ceil_mode=1` does it;
  where Caffe's "a last window that starts in the padding is dropped" rule makes Caffe's size
  the round-down one, plain `ceil_mode=0` is exact. Sizes ONNX cannot reproduce exactly raise
  NetgenError naming the layer.
- Sigmoid is Sigmoid; SENet's Axpy(a, x, y) (the IR's SE product and sum) is Mul + Add,
  the N x C x 1 x 1 gate broadcast; a two-bottom Scale is Reshape + Mul.
- Option A's realization: a `fixed` depthwise 1x1 stride-s convolution with weight 1 becomes
  `Slice` with steps s (exactly x[:, :, ::s, ::s]); `Power` with scale 0 becomes `Where(False,
  x, c)`, which yields the constant even where x is inf or NaN (x * 0 would not).

Learned blobs become initializers named after their layer (`res2a_branch2a.weight`,
`bn2a_branch2a.mean`); constants the realization needs (reshape targets, slice steps, the
gamma/beta of a BatchNorm without Scale) are Constant nodes, so that "initializers" and
"Caffe's blobs" are the same set and parameters can be counted from the ONNX file alone.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from netgen import __version__
from netgen.arch import ir
from netgen.arch.shapes import conv_out
from netgen.arch.weights import Weights
from netgen.errors import NetgenError

MIN_OPSET = 13
MAX_OPSET = 21
DEFAULT_OPSET = 17
BATCH_DIM = "N"
INT64_MAX = 2**63 - 1


def ir_version_for(opset: int) -> int:
    """The lowest IR version that supports `opset` (onnx.helper.VERSION_TABLE): 7 for 13,
    8 for 15..18, 9 for 19/20, 10 for 21. ONNX Runtime 1.17 loads up to IR 9, 1.18+ IR 10;
    onnx 1.23 would otherwise stamp IR 14, which ORT 1.31 refuses."""
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def check_opset(opset: int) -> None:
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise NetgenError(f"ONNX opset {opset} is not supported; allowed: {MIN_OPSET}..{MAX_OPSET}")


# ----------------------------------------------------------------------------------------
# Tensor naming (SSA) and fusion decisions: computed once, shared by the emitter and checkers.

@dataclass
class TensorPlan:
    """ONNX tensor names for every layer's bottoms and tops, and the BatchNorm+Scale pairs.

    `fused[bn_index] = scale_index`; the fused BatchNormalization writes the Scale's top
    tensor and the BatchNorm's own top tensor does not exist in the ONNX graph.
    """

    inputs: list[list[str]]
    outputs: list[list[str]]
    fused: dict[int, int]
    graph_outputs: list[str]  # logits before prob, in production order
    shapes: dict[str, ir.Shape] = field(default_factory=dict)  # ONNX tensor -> IR shape
    all_shapes: dict[str, ir.Shape] = field(default_factory=dict)  # fused-away tensors too


def _uniquify(candidate: str, used: set[str]) -> str:
    name, i = candidate, 1
    while name in used:
        name = f"{candidate}_{i}"
        i += 1
    used.add(name)
    return name


def _can_fuse_scale(scale: ir.Layer, rank: int) -> bool:
    p: ir.ScaleParam = scale.param
    return (len(scale.bottoms) == 1 and len(scale.tops) == 1 and rank >= 2
            and p.axis % rank == 1 and p.num_axes == 1)


def tensor_plan(graph: ir.Graph) -> TensorPlan:
    """Name every tensor version, decide BatchNorm+Scale fusion and the graph outputs."""
    blob_names = {b.name for b in graph.inputs} | {t for layer in graph.layers for t in layer.tops}
    used: set[str] = {b.name for b in graph.inputs}
    current: dict[str, str] = {b.name: b.name for b in graph.inputs}
    shapes: dict[str, ir.Shape] = {b.name: tuple(b.shape) for b in graph.inputs}
    ins: list[list[str]] = []
    outs: list[list[str]] = []
    for layer in graph.layers:
        ins.append([current[b] for b in layer.bottoms])
        names = []
        for top, shape in zip(layer.tops, layer.top_shapes):
            if top not in current and top not in used:
                name = _uniquify(top, used)
            elif layer.name not in blob_names and layer.name not in used:
                name = _uniquify(layer.name, used)
            else:
                name = _uniquify(f"{top}/{layer.name}", used)
            names.append(name)
            shapes[name] = tuple(shape)
        for top, name in zip(layer.tops, names):
            current[top] = name
        outs.append(names)

    consumers: dict[str, int] = {}
    for names in ins:
        for name in names:
            consumers[name] = consumers.get(name, 0) + 1
    final = [current[b] for b in graph.outputs]

    fused: dict[int, int] = {}
    for i, layer in enumerate(graph.layers):
        if layer.type != "BatchNorm":
            continue
        produced = outs[i][0]
        if consumers.get(produced) != 1 or produced in final:
            continue
        for j in range(i + 1, len(graph.layers)):
            if produced in ins[j]:
                other = graph.layers[j]
                if other.type == "Scale" and _can_fuse_scale(other, len(layer.top_shapes[0])):
                    fused[i] = j
                break
    all_shapes = dict(shapes)
    for i in fused:
        shapes.pop(outs[i][0], None)

    graph_outputs: list[str] = []
    producer_of = {name: i for i, names in enumerate(outs) for name in names}
    for name in final:
        layer = graph.layers[producer_of[name]] if name in producer_of else None
        if layer is not None and layer.type == "Softmax" and ins[producer_of[name]][0] not in graph_outputs:
            graph_outputs.append(ins[producer_of[name]][0])
        if name not in graph_outputs:
            graph_outputs.append(name)
    return TensorPlan(ins, outs, fused, graph_outputs, shapes, all_shapes)


# ----------------------------------------------------------------------------------------
# Emission

class _Emitter:
    def __init__(self, graph: ir.Graph, weights: Weights, plan: TensorPlan):
        self.graph = graph
        self.weights = weights
        self.plan = plan
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used = set(plan.all_shapes)
        self.node_names: set[str] = set()
        self.index = {layer.name: i for i, layer in enumerate(graph.layers)}

    # -- helpers ---------------------------------------------------------------------
    def fail(self, layer: ir.Layer, message: str) -> NetgenError:
        return NetgenError(f"layer {layer.name!r} ({layer.type}): {message}")

    def temp(self, layer: ir.Layer, what: str) -> str:
        return _uniquify(f"{layer.name}/{what}", self.used)

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs,
                                           name=_uniquify(name, self.node_names), **attrs))

    def const(self, layer: ir.Layer, what: str, value: np.ndarray) -> str:
        name = self.temp(layer, what)
        self.node("Constant", [], [name], f"{layer.name}/{what}",
                  value=numpy_helper.from_array(np.asarray(value), name))
        return name

    def init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(
            np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def blobs(self, layer: ir.Layer) -> list[np.ndarray]:
        """The layer's blobs from `weights`, checked and reshaped to the IR's blob shapes."""
        expected = layer.blob_shapes
        got = self.weights.get(layer.name)
        if got is None:
            raise self.fail(layer, f"no weights given (expected {len(expected)} blob(s))")
        if len(got) != len(expected):
            raise self.fail(layer, f"has {len(got)} weight blob(s), the layer needs "
                            f"{len(expected)}")
        out = []
        for k, (array, shape) in enumerate(zip(got, expected)):
            array = np.asarray(array, dtype=np.float32)
            if array.size != math.prod(shape):
                raise self.fail(layer, f"blob {k} has shape {list(array.shape)}, expected "
                                f"{list(shape)}")
            out.append(array.reshape(shape))
        return out

    # -- per type ---------------------------------------------------------------------
    def emit(self) -> None:
        fused_scales = set(self.plan.fused.values())
        for i, layer in enumerate(self.graph.layers):
            if i in fused_scales:
                continue
            x, y = self.plan.inputs[i], self.plan.outputs[i]
            if i in self.plan.fused:
                j = self.plan.fused[i]
                self.batch_norm(layer, x, self.plan.outputs[j], self.graph.layers[j])
                continue
            handler = getattr(self, "op_" + layer.type.lower(), None)
            if handler is None:
                raise self.fail(layer, "has no ONNX translation")
            handler(layer, x, y)

    def op_convolution(self, layer, x, y):
        p: ir.ConvolutionParam = layer.param
        channels = layer.blob_shapes[0][0]
        in_channels = layer.blob_shapes[0][1] * p.group
        if (layer.fixed and p.group == channels == in_channels and p.kernel == (1, 1)
                and p.pad == (0, 0) and not p.bias_term):
            given = self.weights.get(layer.name)
            if given is None or (len(given) == 1 and np.all(np.asarray(given[0]) == 1)):
                # x[:, :, ::sh, ::sw], exactly: Caffe's (H - 1) // s + 1 == ceil(H / s).
                self.node("Slice", [x[0], self.const(layer, "starts", np.array([0, 0], np.int64)),
                                    self.const(layer, "ends", np.array([INT64_MAX] * 2, np.int64)),
                                    self.const(layer, "axes", np.array([2, 3], np.int64)),
                                    self.const(layer, "steps", np.array(p.stride, np.int64))],
                          y, layer.name)
                return
        self._convolution_node("Conv", layer, x, y)

    def op_deconvolution(self, layer, x, y):
        """Caffe's Deconvolution is ONNX's ConvTranspose: the same (in, out / group, kh, kw)
        weight layout and output size stride * (in - 1) + extent - 2 pad."""
        self._convolution_node("ConvTranspose", layer, x, y)

    def _convolution_node(self, op: str, layer, x, y) -> None:
        p: ir.ConvolutionParam = layer.param
        blobs = self.blobs(layer)
        if layer.fixed:  # constants of the realization, not parameters
            inputs = [x[0]] + [self.const(layer, f"blob{k}", b) for k, b in enumerate(blobs)]
        else:
            inputs = [x[0], self.init(f"{layer.name}.weight", blobs[0])]
            if p.bias_term:
                inputs.append(self.init(f"{layer.name}.bias", blobs[1]))
        self.node(op, inputs, y, layer.name, kernel_shape=list(p.kernel),
                  strides=list(p.stride), pads=[p.pad[0], p.pad[1], p.pad[0], p.pad[1]],
                  dilations=list(p.dilation), group=p.group)

    def op_pooling(self, layer, x, y):
        p: ir.PoolingParam = layer.param
        op = "MaxPool" if p.pool == "MAX" else "AveragePool"
        if p.global_pooling:
            self.node("Global" + op, x, y, layer.name)
            return
        in_shape = self._input_shape(layer)
        out_shape = layer.top_shapes[0]
        attrs = pooling_attributes(layer.name, p, in_shape[2:], out_shape[2:])
        self.node(op, x, y, layer.name, **attrs)

    def _input_shape(self, layer: ir.Layer) -> ir.Shape:
        return self.plan.all_shapes[self.plan.inputs[self.index[layer.name]][0]]

    def batch_norm(self, layer, x, y, scale: ir.Layer | None):
        p: ir.BatchNormParam = layer.param
        if p.use_global_stats is False:
            raise self.fail(layer, "use_global_stats: false normalises with the statistics of "
                            "each batch; ONNX inference form needs stored statistics (set it "
                            "true or remove it in a deploy net)")
        mean, var, factor = self.blobs(layer)
        f = np.float32(factor.reshape(-1)[0])
        inv = np.float32(0) if f == 0 else np.float32(1) / f
        inputs = [x[0]]
        channels = mean.size
        if scale is not None:
            sblobs = self.blobs(scale)
            gamma = self.init(f"{scale.name}.weight", sblobs[0].reshape(channels))
            if scale.param.bias_term:
                beta = self.init(f"{scale.name}.bias", sblobs[1].reshape(channels))
            else:
                beta = self.const(layer, "beta", np.zeros(channels, np.float32))
        else:
            gamma = self.const(layer, "gamma", np.ones(channels, np.float32))
            beta = self.const(layer, "beta", np.zeros(channels, np.float32))
        inputs += [gamma, beta, self.init(f"{layer.name}.mean", mean * inv),
                   self.init(f"{layer.name}.var", var * inv)]
        self.node("BatchNormalization", inputs, y, layer.name, epsilon=float(p.eps))

    def op_batchnorm(self, layer, x, y):
        self.batch_norm(layer, x, y, None)

    def _broadcast(self, layer, shape: ir.Shape, axis: int, array: np.ndarray) -> np.ndarray:
        rank = len(shape)
        axis = axis % rank if rank else 0
        return array.reshape(array.shape + (1,) * (rank - axis - array.ndim))

    def op_scale(self, layer, x, y):
        p: ir.ScaleParam = layer.param
        shape = self._input_shape(layer)
        if len(x) == 2:
            self._scale_by_blob(layer, x, y, shape)
            return
        blobs = self.blobs(layer)
        gamma = self.init(f"{layer.name}.weight", self._broadcast(layer, shape, p.axis, blobs[0]))
        if not p.bias_term:
            self.node("Mul", [x[0], gamma], y, layer.name)
            return
        scaled = self.temp(layer, "scaled")
        self.node("Mul", [x[0], gamma], [scaled], f"{layer.name}/mul")
        beta = self.init(f"{layer.name}.bias", self._broadcast(layer, shape, p.axis, blobs[1]))
        self.node("Add", [scaled, beta], y, layer.name)

    def _scale_by_blob(self, layer, x, y, shape):
        """Caffe's two-bottom Scale: bottom[1] covers bottom[0]'s axes from `axis` on; a
        Reshape appends the ones that make numpy broadcasting line it up (batch kept)."""
        p: ir.ScaleParam = layer.param
        rank = len(shape)
        axis = p.axis % rank
        factor = self.plan.all_shapes[x[1]]
        if axis == 0:
            target = [0] + list(factor[1:]) + [1] * (rank - len(factor))
        else:
            target = list(factor) + [1] * (rank - axis - len(factor))
        lined = self.temp(layer, "factor")
        self.node("Reshape", [x[1], self.const(layer, "shape", np.array(target, np.int64))],
                  [lined], f"{layer.name}/reshape")
        self.node("Mul", [x[0], lined], y, layer.name)

    def op_sigmoid(self, layer, x, y):
        self.node("Sigmoid", x, y, layer.name)

    def op_axpy(self, layer, x, y):
        """SENet's Axpy(a, x, y) = a * x + y: the gate broadcasts over H and W."""
        product = self.temp(layer, "product")
        self.node("Mul", [x[1], x[0]], [product], f"{layer.name}/mul")
        self.node("Add", [x[2], product], y, layer.name)

    def op_bias(self, layer, x, y):
        p: ir.BiasParam = layer.param
        shape = self._input_shape(layer)
        (bias,) = self.blobs(layer)
        self.node("Add", [x[0], self.init(f"{layer.name}.bias",
                                          self._broadcast(layer, shape, p.axis, bias))],
                  y, layer.name)

    def op_relu(self, layer, x, y):
        slope = layer.param.negative_slope
        if slope:
            self.node("LeakyRelu", x, y, layer.name, alpha=float(slope))
        else:
            self.node("Relu", x, y, layer.name)

    def op_prelu(self, layer, x, y):
        (slope,) = self.blobs(layer)
        rank = len(self._input_shape(layer))
        if not layer.param.channel_shared:
            slope = slope.reshape((-1,) + (1,) * (rank - 2))
        self.node("PRelu", [x[0], self.init(f"{layer.name}.slope", slope)], y, layer.name)

    def op_eltwise(self, layer, x, y):
        p: ir.EltwiseParam = layer.param
        inputs = list(x)
        if p.operation == "SUM":
            if p.coeff and any(c != 1 for c in p.coeff):
                scaled = []
                for k, (name, c) in enumerate(zip(inputs, p.coeff)):
                    if c == 1:
                        scaled.append(name)
                        continue
                    out = self.temp(layer, f"coeff{k}")
                    self.node("Mul", [name, self.const(layer, f"c{k}", np.array(c, np.float32))],
                              [out], f"{layer.name}/coeff{k}")
                    scaled.append(out)
                inputs = scaled
            op = "Add" if len(inputs) == 2 else "Sum"
            self.node(op, inputs, y, layer.name)
        elif p.operation == "MAX":
            self.node("Max", inputs, y, layer.name)
        elif p.operation == "PROD":
            acc = inputs[0]
            for k, name in enumerate(inputs[1:], start=1):
                last = k == len(inputs) - 1
                out = y if last else [self.temp(layer, f"prod{k}")]
                self.node("Mul", [acc, name], out, layer.name if last else f"{layer.name}/prod{k}")
                acc = out[0]
        else:
            raise self.fail(layer, f"unknown operation {p.operation!r}; allowed: SUM, PROD, MAX")

    def op_innerproduct(self, layer, x, y):
        p: ir.InnerProductParam = layer.param
        shape = self._input_shape(layer)
        rank = len(shape)
        axis = p.axis % rank
        if axis == 0:
            raise self.fail(layer, "axis 0 folds the batch into the features; ONNX export needs "
                            "a per-sample InnerProduct (axis >= 1)")
        blobs = self.blobs(layer)
        weight = blobs[0]
        if axis == 1:
            flat = x[0]
            if rank != 2:
                flat = self.temp(layer, "flatten")
                self.node("Flatten", x, [flat], f"{layer.name}/flatten", axis=1)
            inputs = [flat, self.init(f"{layer.name}.weight", weight)]
            if p.bias_term:
                inputs.append(self.init(f"{layer.name}.bias", blobs[1]))
            self.node("Gemm", inputs, y, layer.name, transB=0 if p.transpose else 1)
            return
        # axis > 1: keep the leading axes, multiply the flattened rest by W^T.
        target = np.array([0] * axis + [-1], np.int64)
        flat = self.temp(layer, "reshape")
        self.node("Reshape", [x[0], self.const(layer, "shape", target)], [flat],
                  f"{layer.name}/reshape")
        matrix = weight if p.transpose else weight.T
        if not p.bias_term:
            self.node("MatMul", [flat, self.init(f"{layer.name}.weight", matrix)], y, layer.name)
            return
        product = self.temp(layer, "matmul")
        self.node("MatMul", [flat, self.init(f"{layer.name}.weight", matrix)], [product],
                  f"{layer.name}/matmul")
        self.node("Add", [product, self.init(f"{layer.name}.bias", blobs[1])], y, layer.name)

    def op_softmax(self, layer, x, y):
        self.node("Softmax", x, y, layer.name, axis=int(layer.param.axis))

    def op_concat(self, layer, x, y):
        self.node("Concat", x, y, layer.name, axis=int(layer.param.axis))

    def op_power(self, layer, x, y):
        p: ir.PowerParam = layer.param
        if p.power * p.scale == 0:
            # Caffe ignores the input then and fills the constant (1 for power 0).
            value = 1.0 if p.power == 0 else float(np.float32(p.shift) ** np.float32(p.power))
            self.node("Where", [self.const(layer, "false", np.array(False)), x[0],
                                self.const(layer, "value", np.array(value, np.float32))],
                      y, layer.name)
            return
        steps = []
        if p.scale != 1:
            steps.append(("Mul", "scale", p.scale))
        if p.shift != 0:
            steps.append(("Add", "shift", p.shift))
        if p.power != 1:
            steps.append(("Pow", "power", p.power))
        if not steps:
            self.node("Identity", x, y, layer.name)
            return
        acc = x[0]
        for k, (op, what, value) in enumerate(steps):
            last = k == len(steps) - 1
            out = y if last else [self.temp(layer, what)]
            self.node(op, [acc, self.const(layer, what, np.array(value, np.float32))], out,
                      layer.name if last else f"{layer.name}/{what}")
            acc = out[0]

    def op_mvn(self, layer, x, y):
        """x - mean (GlobalAveragePool: over H and W, or over C, H and W of x laid out as
        N x 1 x CHW x 1); with normalize_variance, divided by sqrt(var) + eps as Caffe does."""
        p: ir.MVNParam = layer.param

        def mean(tensor: str, what: str) -> str:
            if p.across_channels:
                flat = self.temp(layer, f"{what}_flat")
                self.node("Reshape", [tensor, self.const(layer, f"{what}_shape",
                                                         np.array([0, 1, -1, 1], np.int64))],
                          [flat], f"{layer.name}/{what}_flat")
                tensor = flat
            out = self.temp(layer, what)
            self.node("GlobalAveragePool", [tensor], [out], f"{layer.name}/{what}")
            return out

        if not p.normalize_variance:
            self.node("Sub", [x[0], mean(x[0], "mean")], y, layer.name)
            return
        centred = self.temp(layer, "centred")
        self.node("Sub", [x[0], mean(x[0], "mean")], [centred], f"{layer.name}/centred")
        square = self.temp(layer, "square")
        self.node("Mul", [centred, centred], [square], f"{layer.name}/square")
        std = self.temp(layer, "std")
        self.node("Sqrt", [mean(square, "var")], [std], f"{layer.name}/std")
        divisor = self.temp(layer, "divisor")
        self.node("Add", [std, self.const(layer, "eps", np.array(p.eps, np.float32))],
                  [divisor], f"{layer.name}/divisor")
        self.node("Div", [centred, divisor], y, layer.name)

    def op_dropout(self, layer, x, y):
        self.node("Identity", x, y, layer.name)  # Caffe's Dropout is the identity at TEST

    def op_flatten(self, layer, x, y):
        p: ir.FlattenParam = layer.param
        shape = self._input_shape(layer)
        rank = len(shape)
        start, end = p.axis % rank, p.end_axis % rank
        if start == 1 and end == rank - 1:
            self.node("Flatten", x, y, layer.name, axis=1)
            return
        if start == 0:
            raise self.fail(layer, "axis 0 folds the batch into the features; not exportable "
                            "with a symbolic batch")
        target = [0] * start + [-1] + list(shape[end + 1:])
        self.node("Reshape", [x[0], self.const(layer, "shape", np.array(target, np.int64))], y,
                  layer.name)

    def op_reshape(self, layer, x, y):
        p: ir.ReshapeParam = layer.param
        shape = self._input_shape(layer)
        out_shape = layer.top_shapes[0]
        rank = len(shape)
        start = p.axis % (rank + 1) if p.axis < 0 else p.axis
        end = rank if p.num_axes == -1 else start + p.num_axes
        if start == 0 and (not p.shape or p.shape[0] != 0):
            raise self.fail(layer, "the reshape rewrites the batch axis (its first dim is not "
                            "0); not exportable with a symbolic batch")
        # Leading axes copied (0); Caffe's 0 at position i copies input axis start + i, and
        # ONNX's 0 copies the same index, so the middle is Caffe's list verbatim; the tail
        # moves when the middle changes length, so it is spelled out.
        target = [0] * start + list(p.shape) + list(out_shape[start + len(p.shape):])
        assert len(target) == len(out_shape), (target, out_shape, end)
        self.node("Reshape", [x[0], self.const(layer, "shape", np.array(target, np.int64))], y,
                  layer.name)

    def op_slice(self, layer, x, y):
        p: ir.SliceParam = layer.param
        axis = p.axis % len(self._input_shape(layer))
        sizes = [s[axis] for s in layer.top_shapes]
        if len(y) == 1:
            self.node("Identity", x, y, layer.name)
            return
        self.node("Split", [x[0], self.const(layer, "split", np.array(sizes, np.int64))], y,
                  layer.name, axis=axis)

    def op_split(self, layer, x, y):
        for k, out in enumerate(y):
            self.node("Identity", x, [out], layer.name if k == 0 else f"{layer.name}/{k}")


def pooling_attributes(name: str, p: ir.PoolingParam, size: tuple[int, ...],
                       out: tuple[int, ...]) -> dict:
    """ONNX pooling attributes that give Caffe's output size and values, or NetgenError.

    Per axis, Caffe's size is the round-up one, or one less where the last window would start
    in the padding. ONNX's `ceil_mode=1` rounds up (ORT also drops a window that starts past
    the input plus head padding; ONNX shape inference does not), `ceil_mode=0` rounds down.
    """
    floor_ok, ceil_ok = [], []
    for n, k, s, pad, o in zip(size, p.kernel, p.stride, p.pad, out):
        floor_out = conv_out(n, k, s, pad)  # ceil_mode=0 rounds down as a convolution does
        ceil_out = -((n + 2 * pad - k) // -s) + 1
        floor_ok.append(o == floor_out)
        # ORT and ONNX shape inference agree with ceil when the last window starts inside
        # input + head padding; Caffe's values agree when it starts inside the input.
        ceil_ok.append(o == ceil_out and (o - 1) * s - pad < n)
    attrs: dict = dict(kernel_shape=list(p.kernel), strides=list(p.stride),
                       pads=[p.pad[0], p.pad[1], p.pad[0], p.pad[1]])
    if p.pool == "AVE":
        # Caffe divides by the window's part inside [0, H + pad) (padding included), clipped
        # to the input when pad is 0: without padding, a last window that rounding up lets
        # overhang the input (ResNet-D's 2x2 pooling of an odd map) is divided by its part
        # inside, which is ONNX's count_include_pad=0 exactly.
        partial = not any(p.pad) and any((o - 1) * s + k > n for n, k, s, o in
                                         zip(size, p.kernel, p.stride, out))
        attrs["count_include_pad"] = 0 if partial else 1
    if all(floor_ok):
        attrs["ceil_mode"] = 0
    elif all(ceil_ok):
        attrs["ceil_mode"] = 1
    else:
        raise NetgenError(
            f"layer {name!r} (Pooling): Caffe's output size {list(out)} for input "
            f"{list(size)}, kernel {list(p.kernel)}, stride {list(p.stride)}, pad {list(p.pad)} "
            "has a last window lying wholly outside the input (Caffe fills it with -FLT_MAX or "
            "divides by zero); ONNX cannot reproduce it. Use a kernel >= stride or a pad")
    return attrs


def _value_info(name: str, shape: ir.Shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, *shape[1:]])


def to_onnx(graph: ir.Graph, weights: Weights, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ONNX model of `graph` with `weights` (layer name -> Caffe blobs), batch symbolic."""
    check_opset(opset)
    plan = tensor_plan(graph)
    emitter = _Emitter(graph, weights, plan)
    emitter.emit()
    inputs = [_value_info(b.name, b.shape) for b in graph.inputs]
    outputs = [_value_info(name, plan.shapes[name]) for name in plan.graph_outputs]
    onnx_graph = helper.make_graph(emitter.nodes, graph.name or "net", inputs, outputs)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="netgen", producer_version=__version__,
                              doc_string=f"{graph.name}: generated by netgen from the graph IR")
    for tensor in emitter.initializers:
        # Not make_graph(..., initializers): its extend() serialises each tensor, which
        # protobuf refuses for one of 2 GiB or more (a huge fc); CopyFrom does not. Added
        # after make_model, which copies the graph: one copy of the weights fewer.
        model.graph.initializer.add().CopyFrom(tensor)
    model.ir_version = ir_version_for(opset)
    return model


# ----------------------------------------------------------------------------------------
# Checks shared by the tests and `netgen validate`

def dims(value_info: onnx.ValueInfoProto) -> tuple:
    """A value's shape as a tuple of ints and symbol strings ('?' for unknown)."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return tuple(out)


def shape_mismatches(model: onnx.ModelProto, graph: ir.Graph,
                     plan: TensorPlan | None = None) -> tuple[int, list[str]]:
    """Strict shape inference vs the IR: (tensors compared, descriptions of mismatches).

    Every IR tensor that exists in the ONNX graph must be inferred as ("N", *IR shape[1:]).
    `plan` is tensor_plan(graph), for a caller that has it already.
    """
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    found = {v.name: dims(v) for v in (*inferred.graph.value_info, *inferred.graph.output,
                                       *inferred.graph.input)}
    plan = plan or tensor_plan(graph)
    problems = []
    for name, shape in plan.shapes.items():
        want = (BATCH_DIM, *shape[1:])
        got = found.get(name)
        if got != want:
            problems.append(f"{name}: ONNX {list(got) if got else 'no shape'}, IR {list(want)}")
    return len(plan.shapes), problems


# ----------------------------------------------------------------------------------------
# Saving

def save_onnx(model: onnx.ModelProto, path: str | os.PathLike,
              external_data: bool | None = None) -> None:
    """Write `model` atomically; with external data its tensors go to `<file>.data` beside it.

    external_data=None decides by size (over ~1.8 GB of initializers: external, since
    protobuf cannot serialise 2 GiB). Every file is written under a temporary name in the
    target folder and fsynced; only then are they renamed into place, the data file first,
    so a reader never finds a model whose data file is missing or partial.
    """
    from netgen.onnx.files import model_files  # the bytes of the file(s), shared with builds

    target = Path(path)
    files = model_files(model, target.name, external_data)
    temps: dict[str, str] = {}
    try:
        for name, payload in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
            temps[name] = tmp
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
        for name in sorted(files, key=lambda n: n == target.name):  # the model last
            os.replace(temps.pop(name), target.parent / name)
        stale = target.parent / (target.name + ".data")
        if stale.name not in files and stale.is_file():
            stale.unlink()  # a previous external-data save of this model
    except OSError as exc:
        raise NetgenError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
