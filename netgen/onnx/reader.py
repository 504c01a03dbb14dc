"""ONNX -> graph IR, for the ops that have a Caffe equivalent.

The other direction of netgen's ONNX emitter, and the way into netgen for graphs exported
by other tools: PyTorch's TorchScript and dynamo exporters (BatchNorm folded into biased
convolutions or kept as BatchNormalization, GlobalAveragePool + Flatten + Gemm or
ReduceMean + Reshape + Gemm heads, MatMul + Add, Dropout, Identity, a Softmax or none,
grouped convolutions). Every node becomes Caffe layers with Caffe's semantics, so that the
result can be written as a deploy.prototxt + model.caffemodel and computes what the ONNX
graph computes:

- BatchNormalization -> BatchNorm (statistics, moving-average factor 1) + Scale with bias;
- ONNX's asymmetric pads are accepted only where Caffe's symmetric padding gives the same
  windows; pooling becomes round_mode CEIL where Caffe's rounding up gives ONNX's output
  size, else FLOOR (PyTorch's ceil_mode=0, e.g. torchvision's stem), else it is refused;
- Gemm / MatMul -> InnerProduct (a following Add of a constant becomes its bias; a Flatten,
  or a Reshape to (N, -1), before it is the InnerProduct's own flattening);
- ReduceMean over H and W -> global average pooling;
- Sigmoid -> Sigmoid; a Mul of an N x C x H x W tensor by an N x C x 1 x 1 one (a
  squeeze-and-excitation gate) followed by the Add of the shortcut -> SENet's Axpy, the
  IR's SE product and sum (a gate product read by anything else: Flatten + a two-bottom
  Scale, axis 0);
- Identity and Dropout disappear, Flatten / Reshape / Squeeze / Unsqueeze become Flatten or
  Reshape, Pad of zero channels before and/or after the input becomes Power(scale 0) zero
  blocks, a Slice of one where a piece is smaller than the input's channels, and a Concat
  (option A), a reflect, edge or wrap Pad of H and W becomes a Slice of the rows and
  columns it copies and a Concat, a strided Slice of H and W becomes the fixed depthwise
  subsample convolution, Split becomes Caffe's Slice;
- x - mean(x over H and W) becomes Caffe's MVN without variance (a GroupNorm, which
  normalisation writes in such ops), (a * x + b) ** p one Power.

The model is normalised first (netgen.onnx.normalize): constants are initializers, the
shape subgraphs of hand-written PyTorch code (`out.view(out.size(0), -1)`, F.pad's pads)
are folded, and the two Slices of x[:, :, ::2, ::2] are one, so each handler meets one
spelling of its computation.

Anything else stops with a NetgenError naming the node and its op, and so does an
attribute the handlers do not read (ATTRIBUTES), since dropping it would change what the
file computes.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.arch import ir, shapes
from netgen.arch.shapes import conv_out, pool_out
from netgen.arch.stages import assign_stages, f32, mark_fixed_by_weights
from netgen.arch.weights import Weights
from netgen.errors import NetgenError, first_line
from netgen.onnx.normalize import normalize

MAX_ONNX_BYTES = 4 << 30


class _Importer:
    """One pass over the nodes (ONNX keeps them in topological order)."""

    def __init__(self, model: onnx.ModelProto, name: str):
        self.graph = model.graph
        self.name = name
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.const: dict[str, np.ndarray] = {}
        for tensor in self.graph.initializer:
            self.const[tensor.name] = _to_array(tensor, f"initializer {tensor.name!r}")
        self.blob: dict[str, str] = {}  # ONNX tensor -> Caffe blob
        self.shape: dict[str, tuple[int, ...]] = {}  # Caffe blob -> its current shape
        self.layers: list[ir.Layer] = []
        self.weights: Weights = {}
        self.producer: dict[str, int] = {}  # Caffe blob -> index of the layer last writing it
        self.layer_names: set[str] = set()
        self.uses: dict[str, int] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for item in node.input:
                if item:
                    self.uses[item] = self.uses.get(item, 0) + 1
                    self.consumers.setdefault(item, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        for item in self.outputs:
            self.uses[item] = self.uses.get(item, 0) + 1
        self.input_names: set[str] = set()
        self.inputs: list[ir.Blob] = []
        # ONNX tensors that are a 4-D blob flattened from axis 1 for an InnerProduct, the
        # Flatten (or Reshape) left out because InnerProduct flattens itself.
        self.flattened: set[str] = set()
        # ONNX tensors that are an SE gate times a branch (a broadcast Mul) whose one reader
        # is an Add: (gate blob, branch blob), made one Axpy with the Add's other input.
        self.gated: dict[str, tuple[str, str]] = {}
        # ONNX tensors that are the mean over H and W of a tensor whose one reader is
        # Sub(that tensor, the mean): Caffe's MVN without variance, made at the Sub.
        self.means: dict[str, str] = {}

    # ---------------------------------------------------------------- helpers

    def fail(self, node: onnx.NodeProto, message: str) -> NetgenError:
        return NetgenError(f"node {self.node_name(node)!r} ({node.op_type}): {message}")

    def node_name(self, node: onnx.NodeProto) -> str:
        return node.name or f"{node.op_type}_{node.output[0] if node.output else '?'}"

    def attrs(self, node: onnx.NodeProto) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def unique(self, name: str) -> str:
        candidate, i = name, 1
        while candidate in self.layer_names:
            i += 1
            candidate = f"{name}_{i}"
        self.layer_names.add(candidate)
        return candidate

    def constant(self, node: onnx.NodeProto, tensor: str, what: str) -> np.ndarray:
        if tensor not in self.const:
            raise self.fail(node, f"{what} ({tensor!r}) must be a constant (initializer) to "
                            "map onto Caffe; a computed one has no Caffe equivalent")
        return self.const[tensor]

    def is_const(self, tensor: str) -> bool:
        return tensor in self.const

    def bottom(self, node: onnx.NodeProto, tensor: str) -> str:
        if tensor not in self.blob:
            raise self.fail(node, f"input {tensor!r} is produced by no earlier node or graph input")
        return self.blob[tensor]

    def in_place_ok(self, tensor: str, output: str) -> bool:
        """Caffe style (BN, Scale, ReLU writing their bottom) where nothing else reads it."""
        blob = self.blob.get(tensor)
        return (self.uses.get(tensor, 0) == 1 and blob not in self.input_names
                and output not in self.outputs and tensor not in self.outputs)

    def add(self, node: onnx.NodeProto, name: str, type_: str, bottoms: list[str], param,
            output: str | None, blobs: list[np.ndarray] | None = None, in_place: bool = False,
            top: str | None = None) -> str:
        """Append one layer, track its top's shape, and map `output` to its top."""
        name = self.unique(name)
        if top is None:
            top = bottoms[0] if in_place else (output or name)
        layer = ir.Layer(name, type_, tuple(bottoms), (top,), param)
        try:
            tops, blob_shapes = shapes.RULES[type_](layer, [self.shape[b] for b in bottoms])
        except NetgenError as exc:
            raise self.fail(node, str(exc)) from None
        if blobs is not None:
            for array, expected in zip(blobs, blob_shapes):
                if tuple(array.shape) != tuple(expected):
                    raise self.fail(node, f"parameter of shape {list(array.shape)}, the layer "
                                    f"needs {list(expected)}")
            self.weights[name] = [np.ascontiguousarray(a, dtype=np.float32) for a in blobs]
        self.layers.append(layer)
        self.shape[top] = tuple(tops[0])
        self.producer[top] = len(self.layers) - 1
        if output is not None:
            self.blob[output] = top
        return top

    def alias(self, output: str, blob: str) -> None:
        self.blob[output] = blob

    def check_attributes(self, node: onnx.NodeProto) -> None:
        """An attribute netgen does not read would be silently dropped from what the file
        computes: refuse it by name instead."""
        known = ATTRIBUTES.get(node.op_type, ())
        for attribute in node.attribute:
            if attribute.name not in known:
                takes = ", ".join(known) if known else "none"
                raise self.fail(node, f"attribute {attribute.name!r} has no meaning in netgen's "
                                f"IR (the {node.op_type} attributes it reads: {takes})")

    # ---------------------------------------------------------------- inputs

    def read_inputs(self) -> None:
        for value in self.graph.input:
            if value.name in self.const:
                continue  # old exporters list initializers among the inputs
            tensor_type = value.type.tensor_type
            if not tensor_type.HasField("shape"):
                raise NetgenError(f"graph input {value.name!r} has no shape")
            dims = []
            for i, dim in enumerate(tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    dims.append(int(dim.dim_value))
                elif i == 0:
                    dims.append(1)  # a symbolic batch: Caffe's deploy nets use 1
                else:
                    raise NetgenError(f"graph input {value.name!r} has a dynamic dimension {i} "
                                      f"({dim.dim_param or '?'}); Caffe needs fixed sizes")
            self.inputs.append(ir.Blob(value.name, tuple(dims)))
            self.input_names.add(value.name)
            self.blob[value.name] = value.name
            self.shape[value.name] = tuple(dims)
        if not self.inputs:
            raise NetgenError("the ONNX graph has no (non-initializer) input")

    # ---------------------------------------------------------------- ops

    def run(self) -> tuple[ir.Graph, Weights]:
        self.read_inputs()
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"op of domain {node.domain!r} has no Caffe equivalent")
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise self.fail(node, "no Caffe equivalent; netgen imports "
                                + ", ".join(SUPPORTED_OPS))
            self.check_attributes(node)
            try:
                handler(node)
            except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
                # A node missing an input, output or attribute, or with one of the wrong
                # type: a malformed file, reported as such instead of a traceback.
                raise self.fail(node, f"malformed node ({type(exc).__name__}: "
                                f"{first_line(exc)})") from None
        for output in self.graph.output:
            if output.name not in self.blob:
                raise NetgenError(f"graph output {output.name!r} is produced by no node")
        if not self.layers:
            raise NetgenError("the ONNX graph has no node with a Caffe equivalent")
        layers = assign_stages(self.layers)
        graph = shapes.infer(self.name, self.inputs, layers)
        return mark_fixed_by_weights(graph, self.weights), self.weights

    def op_Constant(self, node):
        a = node.attribute[0] if len(node.attribute) == 1 else None
        if a is None or a.name not in CONSTANT_VALUES:
            raise self.fail(node, "needs exactly one of the attributes "
                            + ", ".join(CONSTANT_VALUES))
        if a.name == "value":
            value = _to_array(a.t, f"node {self.node_name(node)!r} (Constant)")
        else:
            value = np.asarray(onnx.helper.get_attribute_value(a), CONSTANT_VALUES[a.name])
        self.const[node.output[0]] = value

    def op_Identity(self, node):
        if self.is_const(node.input[0]):
            self.const[node.output[0]] = self.const[node.input[0]]
        else:
            self.pass_through(node)

    def op_Dropout(self, node):
        """Inference Dropout is the identity (ONNX scales at training time only)."""
        if len(node.output) > 1 and node.output[1] and self.uses.get(node.output[1]):
            raise self.fail(node, "its mask output is used; Caffe's Dropout has none")
        if len(node.input) > 2 and node.input[2]:
            training = self.constant(node, node.input[2], "training_mode")
            if bool(np.any(training)):
                raise self.fail(node, "training_mode true: a training-time Dropout is random; "
                                "only inference (the identity) maps onto a deploy net")
        if int(self.attrs(node).get("is_test", 1)) == 0:
            raise self.fail(node, "is_test=0: a training-time Dropout; only inference maps onto "
                            "a deploy net")
        self.pass_through(node)

    def pass_through(self, node) -> None:
        """Output = input (Identity, inference Dropout), keeping a pending flatten."""
        self.alias(node.output[0], self.bottom(node, node.input[0]))
        if node.input[0] in self.flattened:
            self.flattened.add(node.output[0])

    def feeds_fc(self, tensor: str) -> bool:
        """Whether `tensor` reaches only a Gemm/MatMul's first input, through pass-through
        nodes: a flatten there is the InnerProduct's own (it flattens from axis 1)."""
        while True:
            users = self.consumers.get(tensor, [])
            if tensor in self.outputs or len(users) != 1 or users[0].input[0] != tensor:
                return False
            user = users[0]
            if user.op_type in ("Gemm", "MatMul"):
                return True
            if user.op_type not in ("Identity", "Dropout"):
                return False
            tensor = user.output[0]

    def _spatial_attrs(self, node, kernel):
        a = self.attrs(node)
        rank = len(kernel)
        if rank != 2:
            raise self.fail(node, f"{rank}-D kernels: only 2-D ops map onto Caffe")
        strides = tuple(a.get("strides", [1] * rank))
        dilations = tuple(a.get("dilations", [1] * rank))
        pads = list(a.get("pads", [0] * (2 * rank)))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        return a, strides, dilations, pads, auto_pad

    def _auto_pads(self, node, auto_pad, size, kernel, strides, dilations):
        if auto_pad in ("NOTSET", ""):
            return None
        if auto_pad == "VALID":
            return [0, 0, 0, 0]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for n, k, s, d in zip(size, kernel, strides, dilations):
                total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
                small, large = total // 2, total - total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else large)
                end.append(large if auto_pad == "SAME_UPPER" else small)
            return begin + end
        raise self.fail(node, f"auto_pad {auto_pad!r} is not supported")

    def _conv_pads(self, node, size, kernel, strides, dilations, pads) -> ir.Pair:
        """Caffe pads both sides alike: an asymmetric ONNX pad is accepted only where the
        trailing side's difference changes no output (no window reaches it)."""
        out = []
        for axis in range(2):
            begin, end = pads[axis], pads[axis + 2]
            onnx_out = conv_out(size[axis] + begin + end, kernel[axis], strides[axis], 0,
                                dilations[axis])
            caffe_out = conv_out(size[axis], kernel[axis], strides[axis], begin, dilations[axis])
            if begin != end and onnx_out != caffe_out:
                raise self.fail(node, f"asymmetric pads {list(pads)} (begin {begin}, end {end} on "
                                f"axis {axis + 2}) change the output ({onnx_out} vs Caffe's "
                                f"{caffe_out} with symmetric pad {begin}); not expressible in Caffe")
            out.append(begin)
        return out[0], out[1]

    def op_Conv(self, node):
        x = self.bottom(node, node.input[0])
        weight = self.constant(node, node.input[1], "the weight")
        bias = self.constant(node, node.input[2], "the bias") if len(node.input) > 2 and node.input[2] else None
        if weight.ndim != 4:
            raise self.fail(node, f"weight of rank {weight.ndim}: only 2-D convolutions map onto Caffe")
        kernel = tuple(int(k) for k in self.attrs(node).get("kernel_shape", weight.shape[2:]))
        if kernel != tuple(weight.shape[2:]):
            raise self.fail(node, f"kernel_shape {list(kernel)} contradicts the weight's {list(weight.shape)}")
        a, strides, dilations, pads, auto_pad = self._spatial_attrs(node, kernel)
        size = self.shape[x][2:]
        pads = self._auto_pads(node, auto_pad, size, kernel, strides, dilations) or pads
        pad = self._conv_pads(node, size, kernel, strides, dilations, pads)
        group = int(a.get("group", 1))
        param = ir.ConvolutionParam(num_output=int(weight.shape[0]), kernel=kernel,
                                    stride=(int(strides[0]), int(strides[1])), pad=pad,
                                    dilation=(int(dilations[0]), int(dilations[1])), group=group,
                                    bias_term=bias is not None)
        blobs = [weight] + ([bias.reshape(-1)] if bias is not None else [])
        self.add(node, self.node_name(node), "Convolution", [x], param, node.output[0], blobs)

    def op_BatchNormalization(self, node):
        a = self.attrs(node)
        if a.get("training_mode", 0) or not a.get("is_test", 1):
            raise self.fail(node, "training_mode=1: only inference BatchNormalization maps onto Caffe")
        if not a.get("spatial", 1):
            raise self.fail(node, "spatial=0 (statistics per activation, not per channel) has "
                            "no Caffe BatchNorm equivalent")
        if any(o and self.uses.get(o) for o in node.output[1:]):
            raise self.fail(node, "running-statistics outputs are used (training graph)")
        x = self.bottom(node, node.input[0])
        scale, bias, mean, var = (self.constant(node, node.input[i], what) for i, what in
                                  ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        eps = f32(a.get("epsilon", 1e-5))
        name = self.node_name(node)
        in_place = self.in_place_ok(node.input[0], node.output[0])
        top = self.add(node, name, "BatchNorm", [x], ir.BatchNormParam(use_global_stats=True, eps=eps),
                       None, [mean, var, np.ones(1, np.float32)], in_place=in_place,
                       top=None if in_place else f"{node.output[0]}_bn")
        # The Scale's name: netgen's own files name its initializers after it (scale_conv1.weight).
        prefix = node.input[1].rsplit(".", 1)[0]
        if node.input[1].endswith(".weight") and prefix.startswith("scale") and prefix != name:
            scale_name = prefix
        elif name.startswith("bn"):
            scale_name = "scale" + name[2:]
        else:
            scale_name = f"{name}_scale"
        self.add(node, scale_name, "Scale", [top], ir.ScaleParam(bias_term=True), node.output[0],
                 [scale, bias], in_place=in_place)

    def _activation(self, node, type_, param, blobs=None):
        x = self.bottom(node, node.input[0])
        in_place = self.in_place_ok(node.input[0], node.output[0])
        self.add(node, self.node_name(node), type_, [x], param, node.output[0], blobs,
                 in_place=in_place)

    def op_Relu(self, node):
        self._activation(node, "ReLU", ir.ReLUParam())

    def op_LeakyRelu(self, node):
        self._activation(node, "ReLU", ir.ReLUParam(f32(self.attrs(node).get("alpha", 0.01))))

    def op_PRelu(self, node):
        slope = self.constant(node, node.input[1], "the slope")
        x = self.bottom(node, node.input[0])
        if slope.size == 1:
            self._activation(node, "PReLU", ir.PReLUParam(channel_shared=True), [slope.reshape(1)])
            return
        vector = self._per_channel(node, slope, x)
        if vector is None:
            raise self.fail(node, f"slope of shape {list(slope.shape)}: Caffe's PReLU has one "
                            "slope per channel or one for all")
        self._activation(node, "PReLU", ir.PReLUParam(), [vector])

    def _per_channel(self, node, value: np.ndarray, x: str) -> np.ndarray | None:
        """`value` as a (C,) vector if it broadcasts along axis 1 of `x` only, else None."""
        shape = self.shape[x]
        if len(shape) < 2:
            return None
        channels = shape[1]
        trailing = len(shape) - 2
        squeezed = value
        while squeezed.ndim > 1 and squeezed.shape[0] == 1 and squeezed.ndim > trailing + 1:
            squeezed = squeezed.reshape(squeezed.shape[1:])
        if squeezed.ndim == trailing + 1 and squeezed.shape[0] in (1, channels) and \
                all(d == 1 for d in squeezed.shape[1:]):
            return np.broadcast_to(squeezed.reshape(-1), (channels,)).copy()
        return None

    def _eltwise(self, node, operation):
        bottoms = [self.bottom(node, t) for t in node.input]
        if len(set(self.shape[b] for b in bottoms)) != 1:
            raise self.fail(node, "inputs of different shapes (broadcasting) have no Caffe "
                            "Eltwise equivalent: " + ", ".join(str(list(self.shape[b])) for b in bottoms))
        if len(bottoms) == 1:
            self.alias(node.output[0], bottoms[0])
            return
        self.add(node, self.node_name(node), "Eltwise", bottoms, ir.EltwiseParam(operation),
                 node.output[0])

    def _split_const(self, node):
        consts = [t for t in node.input if self.is_const(t)]
        others = [t for t in node.input if not self.is_const(t)]
        return consts, others

    def op_Add(self, node):
        consts, others = self._split_const(node)
        if any(t in self.gated for t in node.input):
            return self._gated_sum(node)
        if not consts:
            return self._eltwise(node, "SUM")
        if len(others) != 1:
            raise self.fail(node, "adds two constants")
        self._add_constant(node, others[0], consts[0], 1.0)

    def _centring(self, node, tensor: str) -> bool:
        """Whether `node` (a mean over H and W of `tensor`) is read only by Sub(tensor, it)."""
        users = self.consumers.get(node.output[0], [])
        return (node.output[0] not in self.outputs and len(users) == 1
                and users[0].op_type == "Sub" and list(users[0].input) == [tensor, node.output[0]])

    def op_Sub(self, node):
        if self.means.get(node.input[1]) == node.input[0]:
            # x minus its mean over H and W (each n, c): Caffe's MVN without the variance
            del self.means[node.input[1]]
            self.add(node, self.node_name(node), "MVN", [self.bottom(node, node.input[0])],
                     ir.MVNParam(normalize_variance=False), node.output[0])
            return
        if self.is_const(node.input[1]) and not self.is_const(node.input[0]):
            return self._add_constant(node, node.input[0], node.input[1], -1.0)
        raise self.fail(node, "only X - constant maps onto Caffe (as a Bias)")

    def _gated_sum(self, node):
        """gate * x + shortcut: SENet's Axpy(gate, x, shortcut), the IR's SE product and sum.
        Where every addend is a gate product (the weighted paths of a selective-kernel unit,
        the radix parts of split attention), the first is a product of its own and each next
        one an Axpy onto the sum so far: the IR the Caffe reader folds netgen's stock layers
        of any of these into (it folds a product and the sum after it)."""
        name = self.node_name(node)
        if len(set(node.input)) == len(node.input) and all(t in self.gated for t in node.input):
            first = node.input[0]
            self._gate_product(node, *self.gated.pop(first), first, f"{name}_first")
            running = self.bottom(node, first)
            for i, t in enumerate(node.input[1:], 1):
                gate, x = self.gated.pop(t)
                last = i == len(node.input) - 1
                running = self.add(node, name if last else f"{name}_sum{i}", "Axpy",
                                   [gate, x, running], ir.NoParam(),
                                   node.output[0] if last else None)
            return
        if len(node.input) != 2 or node.input[0] == node.input[1]:
            for i, t in enumerate(dict.fromkeys(t for t in node.input if t in self.gated)):
                self._gate_product(node, *self.gated.pop(t), t, f"{name}_gate{i}")
            return self._eltwise(node, "SUM")
        product = next(t for t in node.input if t in self.gated)
        other = node.input[1] if node.input[0] == product else node.input[0]
        gate, x = self.gated.pop(product)
        shortcut = self.bottom(node, other)
        if self.shape[shortcut] != self.shape[x]:
            self._gate_product(node, gate, x, product, f"{self.node_name(node)}_gate")
            return self._eltwise(node, "SUM")
        self.add(node, self.node_name(node), "Axpy", [gate, x, shortcut], ir.NoParam(),
                 node.output[0])

    def _add_constant(self, node, tensor, const_name, sign):
        x = self.bottom(node, tensor)
        value = self.const[const_name] * np.float32(sign)
        producer = self.layers[self.producer[x]] if x in self.producer else None
        alone = self.uses.get(tensor) == 1 and tensor not in self.outputs
        # MatMul + Add: the bias of the InnerProduct, as exporters split a Linear layer.
        if (producer is not None and producer.type == "InnerProduct" and not producer.param.bias_term
                and alone):
            n = producer.param.num_output
            if value.size in (1, n) and (value.ndim <= 1 or value.reshape(-1).size == n):
                bias = np.broadcast_to(value.reshape(-1), (n,)).astype(np.float32)
                return self._take_bias(node, x, producer, bias)
        vector = self._per_channel(node, value, x)
        # Mul + Add of per-channel constants: one Scale with bias (a BatchNorm as tf2onnx
        # writes it after a biased conv), not a Scale and a Bias layer, which OpenCV lacks.
        if (vector is not None and producer is not None and producer.type == "Scale"
                and not producer.param.bias_term and len(producer.bottoms) == 1 and alone
                and self.weights[producer.name][0].shape == vector.shape):
            return self._take_bias(node, x, producer, vector.astype(np.float32))
        if vector is None:
            if value.size == 1:
                self._activation(node, "Power", ir.PowerParam(shift=f32(float(value.reshape(-1)[0]))))
                return
            raise self.fail(node, f"a constant of shape {list(value.shape)} added to "
                            f"{list(self.shape[x])}: only per-channel or scalar constants map onto Caffe")
        self.add(node, self.node_name(node), "Bias", [x], ir.BiasParam(), node.output[0], [vector],
                 in_place=self.in_place_ok(tensor, node.output[0]))

    def _take_bias(self, node, x: str, producer: ir.Layer, bias: np.ndarray) -> None:
        """The Add's constant becomes `producer`'s bias; the producer takes over the Add's
        output (its own has no other reader), so a graph output keeps its name."""
        index = self.producer[x]
        top = node.output[0]
        self.layers[index] = replace(producer, tops=(top,),
                                     param=replace(producer.param, bias_term=True))
        self.weights[producer.name].append(bias)
        self.shape[top] = self.shape.pop(x)
        self.producer[top] = self.producer.pop(x)
        self.alias(node.output[0], top)

    def op_Sigmoid(self, node):
        self._activation(node, "Sigmoid", ir.NoParam())

    def _gate_of(self, node) -> tuple[str, str] | None:
        """(gate, x) where the Mul multiplies an N x C x H x W blob by an N x C x 1 x 1 one
        (an SE unit's excitation, broadcast over H and W), else None."""
        if len(node.input) != 2:
            return None
        a, b = (self.bottom(node, t) for t in node.input)
        for gate, x in ((a, b), (b, a)):
            shape, gate_shape = self.shape[x], self.shape[gate]
            if len(shape) == 4 and shape[2:] != (1, 1) and \
                    tuple(gate_shape) == (shape[0], shape[1], 1, 1):
                return gate, x
        return None

    def _sum_reader(self, tensor: str) -> onnx.NodeProto | None:
        """The Add (or Sum) of distinct computed tensors that alone reads `tensor`, if so."""
        users = self.consumers.get(tensor, [])
        if tensor in self.outputs or len(users) != 1 or users[0].op_type not in ("Add", "Sum"):
            return None
        add = users[0]
        if len(add.input) < 2 or any(self.is_const(t) for t in add.input) \
                or len(set(add.input)) != len(add.input):
            return None
        return add

    def _gate_product(self, node, gate: str, x: str, output: str, name: str) -> None:
        """gate * x in stock Caffe: Flatten the N x C x 1 x 1 gate to N x C, then a
        two-bottom Scale with axis 0 (bottom[1] must equal bottom[0]'s leading axes)."""
        top = f"{output}_gate"
        while top in self.shape:  # a file's own tensor of that name (netgen's ONNX of it)
            top += "_"
        flat = self.add(node, f"{name}_flat", "Flatten", [gate], ir.FlattenParam(), None,
                        top=top)
        self.add(node, name, "Scale", [x, flat], ir.ScaleParam(axis=0), output)

    def op_Mul(self, node):
        consts, others = self._split_const(node)
        if not consts:
            gated = self._gate_of(node)
            if gated is None:
                return self._eltwise(node, "PROD")
            if self._sum_reader(node.output[0]) is not None:
                self.gated[node.output[0]] = gated  # the Add makes it one Axpy
                return
            return self._gate_product(node, *gated, node.output[0], self.node_name(node))
        if len(others) != 1:
            raise self.fail(node, "multiplies two constants")
        self._scale_constant(node, others[0], self.const[consts[0]])

    def op_Div(self, node):
        if self.is_const(node.input[1]) and not self.is_const(node.input[0]):
            divisor = self.const[node.input[1]].astype(np.float64)
            if np.any(divisor == 0):
                raise self.fail(node, "divides by zero")
            return self._scale_constant(node, node.input[0], (1.0 / divisor).astype(np.float32))
        raise self.fail(node, "only X / constant maps onto Caffe (as a Scale)")

    def _scale_constant(self, node, tensor, value):
        x = self.bottom(node, tensor)
        if value.size == 1:
            self._activation(node, "Power", ir.PowerParam(scale=f32(float(value.reshape(-1)[0]))))
            return
        vector = self._per_channel(node, value, x)
        if vector is None:
            raise self.fail(node, f"a constant of shape {list(value.shape)} times "
                            f"{list(self.shape[x])}: only per-channel or scalar constants map onto Caffe")
        self.add(node, self.node_name(node), "Scale", [x], ir.ScaleParam(), node.output[0], [vector],
                 in_place=self.in_place_ok(tensor, node.output[0]))

    def op_Pow(self, node):
        if not self.is_const(node.input[1]) or self.const[node.input[1]].size != 1:
            raise self.fail(node, "only a constant scalar exponent maps onto Caffe (Power)")
        power = f32(float(self.const[node.input[1]].reshape(-1)[0]))
        x = self.bottom(node, node.input[0])
        index = self.producer.get(x)
        before = self.layers[index] if index is not None else None
        if (before is not None and before.type == "Power" and before.param.power == 1
                and before.param.scale != 0 and self.uses.get(node.input[0]) == 1
                and node.input[0] not in self.outputs and node.output[0] not in self.outputs):
            # (scale * x + shift) ** power is one Power layer (GroupNorm's (var + eps)^-0.5)
            self.layers[index] = replace(before, param=replace(before.param, power=power))
            self.alias(node.output[0], x)
            return
        self._activation(node, "Power", ir.PowerParam(power=power))

    def op_Where(self, node):
        """Where(constant condition, x, c): netgen's realization of Power with scale 0."""
        cond = self.constant(node, node.input[0], "the condition")
        picked = node.input[1] if bool(np.all(cond)) else node.input[2] if not np.any(cond) else None
        if picked is None:
            raise self.fail(node, "a condition mixing true and false has no Caffe equivalent")
        other = node.input[2] if picked == node.input[1] else node.input[1]
        if not self.is_const(picked):
            self.alias(node.output[0], self.bottom(node, picked))
            return
        value = self.const[picked]
        if value.size != 1 or self.is_const(other):
            raise self.fail(node, "only Where(constant condition, x, scalar) maps onto Caffe")
        x = self.bottom(node, other)
        self.add(node, self.node_name(node), "Power", [x],
                 ir.PowerParam(scale=0.0, shift=f32(float(value.reshape(-1)[0]))), node.output[0])

    def op_Sum(self, node):
        if any(t in self.gated for t in node.input):
            return self._gated_sum(node)
        self._eltwise(node, "SUM")

    def op_Max(self, node):
        self._eltwise(node, "MAX")

    def _pool(self, node, method):
        a = self.attrs(node)
        x = self.bottom(node, node.input[0])
        if len(node.output) > 1 and node.output[1] and self.uses.get(node.output[1]):
            raise self.fail(node, "its Indices output is used; Caffe's pooling has no such top here")
        kernel = tuple(int(k) for k in a["kernel_shape"])
        _, strides, dilations, pads, auto_pad = self._spatial_attrs(node, kernel)
        if any(d != 1 for d in dilations):
            raise self.fail(node, "dilated pooling has no Caffe equivalent")
        size = self.shape[x][2:]
        pads = self._auto_pads(node, auto_pad, size, kernel, strides, dilations) or pads
        ceil_mode = int(a.get("ceil_mode", 0))
        if method == "AVE" and any(pads) and not a.get("count_include_pad", 0):
            raise self.fail(node, "count_include_pad=0 with padding: Caffe's average pooling "
                            "always counts the padding")
        if method == "AVE" and (pads[0] != pads[2] or pads[1] != pads[3]):
            raise self.fail(node, f"asymmetric pads {list(pads)} in average pooling change the "
                            "divisor; not expressible in Caffe")
        caffe_ceil, caffe_floor = [], []
        onnx_size = []
        for axis in range(2):
            begin, end = pads[axis], pads[axis + 2]
            n, k, s = size[axis], kernel[axis], strides[axis]
            if ceil_mode:
                onnx_out = -((n + begin + end - k) // -s) + 1
                if (onnx_out - 1) * s >= n + begin:
                    onnx_out -= 1  # ORT drops a last window starting in the trailing padding
            else:
                onnx_out = conv_out(n + begin + end, k, s, 0)
            if begin >= k:
                raise self.fail(node, f"pad {begin} is not smaller than kernel {k}")
            onnx_size.append(onnx_out)
            caffe_ceil.append(pool_out(n, k, s, begin, "CEIL"))
            caffe_floor.append(pool_out(n, k, s, begin, "FLOOR"))
        # Same window starts (-pad + i * stride) in both; only the number of windows can
        # differ. CEIL where it already gives ONNX's count (so a file has one IR however it
        # spells an unambiguous pooling), else FLOOR, else nothing Caffe has.
        if onnx_size == caffe_ceil:
            round_mode = "CEIL"
        elif onnx_size == caffe_floor:
            round_mode = "FLOOR"
        else:
            how = f"ceil_mode={ceil_mode}" + (f" with pads {list(pads)}" if any(pads) else "")
            raise self.fail(node, f"{how} gives {onnx_size} outputs (input {list(size)}, kernel "
                            f"{list(kernel)}, stride {list(strides)}) but Caffe's pooling gives "
                            f"{caffe_ceil} rounding up and {caffe_floor} rounding down; not "
                            "expressible in Caffe")
        param = ir.PoolingParam(method, kernel=kernel, stride=(int(strides[0]), int(strides[1])),
                                pad=(int(pads[0]), int(pads[1])), round_mode=round_mode)
        self.add(node, self.node_name(node), "Pooling", [x], param, node.output[0])

    def op_MaxPool(self, node):
        self._pool(node, "MAX")

    def op_AveragePool(self, node):
        self._pool(node, "AVE")

    def _global_pool(self, node, method):
        x = self.bottom(node, node.input[0])
        if len(self.shape[x]) != 4:
            raise self.fail(node, f"input of shape {list(self.shape[x])}: only 4-D pooling maps onto Caffe")
        if method == "AVE" and self._centring(node, node.input[0]):
            self.means[node.output[0]] = node.input[0]
            return
        self.add(node, self.node_name(node), "Pooling", [x],
                 ir.PoolingParam(method, global_pooling=True), node.output[0])

    def op_GlobalAveragePool(self, node):
        self._global_pool(node, "AVE")

    def op_GlobalMaxPool(self, node):
        self._global_pool(node, "MAX")

    def op_ReduceMean(self, node):
        """The mean over H and W (the dynamo exporter's adaptive_avg_pool2d((1, 1))) is
        Caffe's global average pooling; keepdims=0 adds the Flatten it implies."""
        a = self.attrs(node)
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        axes = self._axes(node)
        if axes is None or not axes:
            raise self.fail(node, "reduces every axis (no axes): only the mean over H and W "
                            "maps onto Caffe (global average pooling)")
        if len(shape) != 4 or sorted(v % 4 for v in axes) != [2, 3]:
            raise self.fail(node, f"axes {axes} of a {list(shape)} input: only the mean over H "
                            "and W of a 4-D input maps onto Caffe (global average pooling)")
        keepdims = int(a.get("keepdims", 1))
        if keepdims and self._centring(node, node.input[0]):
            self.means[node.output[0]] = node.input[0]
            return
        if keepdims:
            self.add(node, self.node_name(node), "Pooling", [x],
                     ir.PoolingParam("AVE", global_pooling=True), node.output[0])
            return
        name = self.node_name(node)
        pooled = self.add(node, name, "Pooling", [x], ir.PoolingParam("AVE", global_pooling=True),
                          None, top=f"{node.output[0]}_pooled")
        if self.feeds_fc(node.output[0]):
            self.alias(node.output[0], pooled)
            self.flattened.add(node.output[0])
            return
        self.add(node, f"{name}_flatten", "Flatten", [pooled], ir.FlattenParam(axis=1),
                 node.output[0])

    def op_Flatten(self, node):
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        axis = int(self.attrs(node).get("axis", 1))
        axis = axis % len(shape) if axis < 0 else axis
        if axis == 1 and self.feeds_fc(node.output[0]):
            # Flatten + Gemm is one InnerProduct in Caffe (it flattens from axis 1 itself).
            self.alias(node.output[0], x)
            self.flattened.add(node.output[0])
            return
        if axis == 1:
            self.add(node, self.node_name(node), "Flatten", [x], ir.FlattenParam(axis=1),
                     node.output[0])
        else:
            outer = math.prod(shape[:axis])
            self.add(node, self.node_name(node), "Reshape", [x],
                     ir.ReshapeParam(shape=(outer, math.prod(shape[axis:]))), node.output[0])

    def _reshape_to(self, node, x, target):
        self.add(node, self.node_name(node), "Reshape", [x],
                 ir.ReshapeParam(shape=tuple(int(d) for d in target)), node.output[0])

    def op_Reshape(self, node):
        x = self.bottom(node, node.input[0])
        target = [int(d) for d in self.constant(node, node.input[1], "the shape").reshape(-1)]
        allowzero = self.attrs(node).get("allowzero", 0)
        if allowzero and 0 in target:
            raise self.fail(node, "allowzero=1 with a 0 in the shape: Caffe's 0 copies a dimension")
        shape = self.shape[x]
        resolved = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(target)]
        if -1 in resolved and resolved.count(-1) == 1:
            rest = math.prod(d for d in resolved if d != -1)
            resolved[resolved.index(-1)] = math.prod(shape) // rest if rest else -1
        if (len(shape) > 2 and resolved == [shape[0], math.prod(shape[1:])]
                and self.feeds_fc(node.output[0])):
            # The dynamo exporter's flatten (Reshape to [N, C]) before the classifier.
            self.alias(node.output[0], x)
            self.flattened.add(node.output[0])
            return
        if resolved and len(shape) > 1 and resolved[0] == shape[0] and \
                math.prod(resolved[1:]) == math.prod(shape[1:]):
            target = [0] + target[1:]  # the batch kept (a traced view(b, c, 1, 1)): Caffe's 0
        self._reshape_to(node, x, target)

    def _axes(self, node) -> list[int] | None:
        a = self.attrs(node)
        if "axes" in a:
            return [int(v) for v in a["axes"]]
        if len(node.input) > 1 and node.input[1]:
            return [int(v) for v in self.constant(node, node.input[1], "axes").reshape(-1)]
        return None

    def op_Gather(self, node):
        """Normalisation folds a Gather of constants and shapes; one reaching the op mapping
        reads a computed tensor, which has no Caffe layer."""
        self.constant(node, node.input[0], "the data")
        self.constant(node, node.input[1], "the indices")
        raise self.fail(node, "a Gather of constants should have been folded")

    def op_Squeeze(self, node):
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        axes = self._axes(node)
        axes = ([i for i, d in enumerate(shape) if d == 1] if axes is None
                else sorted(v % len(shape) for v in axes))
        if any(shape[i] != 1 for i in axes):
            raise self.fail(node, f"squeezes an axis of size > 1 in {list(shape)}")
        target = [d for i, d in enumerate(shape) if i not in axes]
        if len(shape) > 2 and 0 not in axes and target == [shape[0], math.prod(shape[1:])]:
            # (N, C, 1, 1) -> (N, C), tf2onnx's head after GlobalAveragePool: a flatten from
            # axis 1, the InnerProduct's own where one follows (it keeps the batch axis free)
            if self.feeds_fc(node.output[0]):
                self.alias(node.output[0], x)
                self.flattened.add(node.output[0])
            else:
                self.add(node, self.node_name(node), "Flatten", [x], ir.FlattenParam(axis=1),
                         node.output[0])
            return
        kept = target
        if 0 not in axes:
            kept[0] = 0  # the batch axis stays where it is: Caffe's 0 copies it
        self._reshape_to(node, x, kept)

    def op_Unsqueeze(self, node):
        axes = self._axes(node)
        if not axes:
            raise self.fail(node, "needs axes")
        x = self.bottom(node, node.input[0])
        shape = list(self.shape[x])
        rank = len(shape) + len(axes)
        axes = sorted(v % rank for v in axes)
        for axis in axes:
            shape.insert(axis, 1)
        if axes[0] > 0:
            shape[0] = 0  # the batch axis stays where it is: Caffe's 0 copies it
        self._reshape_to(node, x, shape)

    def op_Gemm(self, node):
        a = self.attrs(node)
        x = self.bottom(node, node.input[0])
        if a.get("transA", 0):
            raise self.fail(node, "transA=1 has no Caffe InnerProduct equivalent")
        if len(self.shape[x]) < 2:
            raise self.fail(node, f"input of shape {list(self.shape[x])}: Gemm takes a matrix")
        weight = self.constant(node, node.input[1], "B (the weight)").astype(np.float32)
        weight = weight if a.get("transB", 0) else weight.T
        weight = weight * np.float32(a.get("alpha", 1.0))
        n, k = weight.shape
        if k != math.prod(self.shape[x][1:]):  # more than 2-D only through a Flatten folded in
            raise self.fail(node, f"weight of {k} inputs for an input of shape {list(self.shape[x])}")
        blobs = [np.ascontiguousarray(weight)]
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node, node.input[2], "C (the bias)").astype(np.float32)
            bias = bias * np.float32(a.get("beta", 1.0))
            if bias.size not in (1, n) or (bias.ndim == 2 and bias.shape[0] != 1):
                raise self.fail(node, f"bias of shape {list(bias.shape)}: InnerProduct has one per output")
            blobs.append(np.broadcast_to(bias.reshape(-1), (n,)).copy())
        self.add(node, self.node_name(node), "InnerProduct", [x],
                 ir.InnerProductParam(num_output=n, bias_term=len(blobs) == 2), node.output[0], blobs)

    def op_MatMul(self, node):
        x = self.bottom(node, node.input[0])
        weight = self.constant(node, node.input[1], "the second operand").astype(np.float32)
        if weight.ndim != 2:
            raise self.fail(node, f"second operand of rank {weight.ndim}: InnerProduct needs a matrix")
        rank = len(self.shape[x])
        flattened = node.input[0] in self.flattened
        inner = math.prod(self.shape[x][1:]) if flattened else self.shape[x][-1]
        if rank < 2 or inner != weight.shape[0]:
            raise self.fail(node, f"input of shape {list(self.shape[x])} against a weight "
                            f"{list(weight.shape)}")
        axis = 1 if flattened else rank - 1
        self.add(node, self.node_name(node), "InnerProduct", [x],
                 ir.InnerProductParam(num_output=int(weight.shape[1]), bias_term=False, axis=axis),
                 node.output[0], [np.ascontiguousarray(weight.T)])

    def op_Softmax(self, node):
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        axis = int(self.attrs(node).get("axis", -1 if self.opset >= 13 else 1)) % len(shape)
        if self.opset < 13 and math.prod(shape[axis + 1:]) != 1:
            raise self.fail(node, f"opset {self.opset} Softmax normalises over axes {axis}.. of "
                            f"{list(shape)} together; Caffe's Softmax uses one axis")
        self.add(node, self.node_name(node), "Softmax", [x], ir.SoftmaxParam(axis=axis),
                 node.output[0])

    def op_Concat(self, node):
        bottoms = [self.bottom(node, t) for t in node.input]
        rank = len(self.shape[bottoms[0]])
        axis = int(self.attrs(node)["axis"]) % rank
        self.add(node, self.node_name(node), "Concat", bottoms, ir.ConcatParam(axis=axis),
                 node.output[0])

    def op_InstanceNormalization(self, node):
        """Normalisation rewrites every one it can (netgen.onnx.normalize.groupnorm)."""
        shape = self.shape.get(self.blob.get(node.input[0], ""), ())
        raise self.fail(node, f"input of shape {list(shape)}: only a 3-D or 4-D input with "
                        "constant scale and bias maps onto Caffe (MVN, Pooling, Power, Scale); "
                        "Caffe has no InstanceNorm layer")

    def op_Pad(self, node):
        """Zero channels before and/or after the input (option A's widening, PyTorch's
        F.pad(x, (0, 0, 0, 0, a, b))) -> stock layers only: a Power(scale 0) of the input is
        a zero block of its C channels; a Caffe Slice of one block gives the two pieces
        smaller than C (a % C and b % C, which then add up to C: both tops are used); a
        Concat puts [zeros before, x, zeros after] together."""
        a = self.attrs(node)
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if "pads" in a:
            pads = [int(p) for p in a["pads"]]
            value = float(a.get("value", 0.0))
        else:
            pads = [int(p) for p in self.constant(node, node.input[1], "pads").reshape(-1)]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(self.constant(node, node.input[2], "the pad value").reshape(-1)[0])
        if len(node.input) > 3 and node.input[3]:
            raise self.fail(node, "the axes input is not supported")
        if mode in COPY_PADS:
            return self._copy_pad(node, x, pads, mode)
        rank = len(shape)
        begin, end = pads[:rank], pads[rank:]
        channels = shape[1] if rank > 1 else 0
        allowed = ("only zero channels before and after the input (mode constant, value 0, "
                   "no pad of N, H or W), a multiple of the input's channels in all, map "
                   "onto Caffe (Power scale 0, Slice, Concat), and zeros on H and W, the same "
                   "on both sides or before a convolution (a layer's padding)")
        if (len(pads) != 2 * rank or rank < 2 or mode != "constant" or value != 0.0
                or any(p for i, p in enumerate(begin + end) if i % rank != 1)):
            raise self.fail(node, f"pads {pads} (mode {mode}, value {value}): {allowed}")
        before, after = begin[1], end[1]
        if before < 0 or after < 0 or before + after == 0 or (before + after) % channels:
            raise self.fail(node, f"pads {pads} add {before} channels before and {after} "
                            f"after an input of {channels}: {allowed}")
        name = self.node_name(node)
        zeros = self.add(node, f"{name}_zeros", "Power", [x], ir.PowerParam(scale=0.0), None,
                         top=f"{name}_zeros")
        if before == 0:  # appended only: the form netgen's own option A writes
            self.add(node, name, "Concat", [x] + [zeros] * (after // channels),
                     ir.ConcatParam(axis=1), node.output[0])
            return
        head, tail = [zeros] * (before // channels), [zeros] * (after // channels)
        if before % channels:
            pieces = self.add_split(node, f"{name}_zeros_split", zeros, before % channels,
                                    (f"{name}_zeros_before", f"{name}_zeros_after"))
            head.append(pieces[0])
            tail.insert(0, pieces[1])
        self.add(node, name, "Concat", head + [x] + tail, ir.ConcatParam(axis=1), node.output[0])

    def _copy_pad(self, node, x: str, pads: list[int], mode: str) -> None:
        """A reflect, edge or wrap pad of H and W: every added row or column is a copy of one
        of the input's, so a Caffe Slice along the axis cuts those out as pieces of their own
        and a Concat puts copies, the whole input and copies together (axis W, then H on
        the result: the modes act on each axis in turn, corners included)."""
        shape = self.shape[x]
        rank = len(shape)
        what = f"{mode} pads {pads} of a {list(shape)} input"
        if rank != 4 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            raise self.fail(node, f"{what}: only pads of H and W of a 4-D input map onto "
                            "Caffe (Slice and Concat of rows and columns)")
        if min(pads) < 0:
            raise self.fail(node, f"{what}: negative pads crop; Caffe's Slice and Concat "
                            "copy whole rows and columns only")
        if not any(pads):
            self.alias(node.output[0], x)
            return
        name = self.node_name(node)
        current = x
        for axis in (3, 2):
            before, after, size = pads[axis], pads[axis + 4], self.shape[current][axis]
            if not before and not after:
                continue
            limit = {"reflect": size - 1, "edge": None, "wrap": size}[mode]
            if limit is not None and max(before, after) > limit:
                raise self.fail(node, f"{what}: {mode} padding of {max(before, after)} on "
                                f"axis {axis} of size {size} takes more than the "
                                f"{limit} {'rows' if axis == 2 else 'columns'} it can copy")
            if mode == "reflect":
                head = list(range(before, 0, -1))
                tail = list(range(size - 2, size - 2 - after, -1))
            elif mode == "edge":
                head, tail = [0] * before, [size - 1] * after
            else:
                head, tail = list(range(size - before, size)), list(range(after))
            points = tuple(sorted({p for c in head + tail for p in (c, c + 1) if 0 < p < size}))
            label = f"{name}_{'hw'[axis - 2]}"
            pieces = self.add_slice(node, f"{label}_slice", current, axis, points,
                                    tuple(f"{label}_{k}" for k in range(len(points) + 1)))
            starts = (0,) + points
            column = {start: top for start, top, end in zip(starts, pieces, points + (size,))
                      if end == start + 1}
            last = axis == 2 or not (pads[2] or pads[6])
            current = self.add(node, label if not last else name, "Concat",
                               [column[c] for c in head] + list(pieces)
                               + [column[c] for c in tail], ir.ConcatParam(axis=axis),
                               node.output[0] if last else None,
                               top=None if last else f"{label}_padded")

    def add_split(self, node, name: str, bottom: str, point: int,
                  tops: tuple[str, str]) -> tuple[str, str]:
        """A Caffe Slice of `bottom` along the channels at `point`, into two tops."""
        first, second = self.add_slice(node, name, bottom, 1, (point,), tops)
        return first, second

    def add_slice(self, node, name: str, bottom: str, axis: int, points: tuple[int, ...],
                  tops: tuple[str, ...]) -> tuple[str, ...]:
        """A Caffe Slice of `bottom` along `axis` at `points`, into len(points) + 1 tops."""
        name = self.unique(name)
        layer = ir.Layer(name, "Slice", (bottom,), tops,
                         ir.SliceParam(axis=axis, slice_point=points))
        try:
            out, _ = shapes.RULES["Slice"](layer, [self.shape[bottom]])
        except NetgenError as exc:
            raise self.fail(node, str(exc)) from None
        self.layers.append(layer)
        for top, top_shape in zip(tops, out):
            self.shape[top] = tuple(top_shape)
            self.producer[top] = len(self.layers) - 1
        return tops

    def op_Split(self, node):
        """Split along one axis -> Caffe's Slice (netgen writes a Caffe Slice as a Split)."""
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        a = self.attrs(node)
        axis = int(a.get("axis", 0)) % len(shape)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in self.constant(node, node.input[1], "split").reshape(-1)]
        elif "split" in a:
            sizes = [int(v) for v in a["split"]]
        else:
            count = int(a.get("num_outputs", len(node.output)))
            step = -(shape[axis] // -count)
            sizes = [min(step, shape[axis] - k * step) for k in range(count)]
        if (len(sizes) != len(node.output) or min(sizes) <= 0 or sum(sizes) != shape[axis]
                or any(not o for o in node.output)):
            raise self.fail(node, f"sizes {sizes} of axis {axis} (size {shape[axis]}) into "
                            f"{len(node.output)} outputs: Caffe's Slice cuts the whole axis "
                            "into non-empty pieces, one per output")
        if axis == 0:
            raise self.fail(node, "splits the batch axis; Caffe's deploy nets keep the batch whole")
        points = tuple(int(p) for p in np.cumsum(sizes)[:-1])
        name = self.unique(self.node_name(node))
        layer = ir.Layer(name, "Slice", (x,), tuple(node.output),
                         ir.SliceParam(axis=axis, slice_point=points))
        out, _ = shapes.RULES["Slice"](layer, [shape])
        self.layers.append(layer)
        for top, top_shape in zip(node.output, out):
            self.shape[top] = tuple(top_shape)
            self.producer[top] = len(self.layers) - 1
            self.blob[top] = top

    def op_Slice(self, node):
        """x[:, :, ::s, ::s] -> the fixed depthwise 1x1 convolution of stride s (option A)."""
        x = self.bottom(node, node.input[0])
        shape = self.shape[x]
        if len(node.input) < 3:
            raise self.fail(node, "opset < 10 Slice (attributes) is not supported")
        starts, ends = (self.constant(node, node.input[i], w).reshape(-1) for i, w in
                        ((1, "starts"), (2, "ends")))
        rank = len(shape)
        axes = (self.constant(node, node.input[3], "axes").reshape(-1) % rank
                if len(node.input) > 3 and node.input[3] else np.arange(len(starts)))
        steps = (self.constant(node, node.input[4], "steps").reshape(-1)
                 if len(node.input) > 4 and node.input[4] else np.ones(len(starts), np.int64))
        step = {int(a): (int(b), int(e), int(s)) for a, b, e, s in zip(axes, starts, ends, steps)}
        hw = [step.get(2), step.get(3)]
        whole = all(a in (2, 3) or (b == 0 and e >= shape[a] and s == 1) for a, (b, e, s) in step.items())
        if (rank != 4 or not whole or None in hw or hw[0][0] != 0 or hw[1][0] != 0
                or hw[0][1] < shape[2] or hw[1][1] < shape[3] or hw[0][2] < 1 or hw[1][2] < 1):
            raise self.fail(node, "only x[:, :, ::s, ::t] (a strided subsample of H and W) maps "
                            "onto Caffe, as a fixed depthwise 1x1 convolution")
        channels = shape[1]
        param = ir.ConvolutionParam(channels, (1, 1), (hw[0][2], hw[1][2]), group=channels,
                                    bias_term=False)
        self.add(node, self.node_name(node), "Convolution", [x], param, node.output[0],
                 [np.ones((channels, 1, 1, 1), np.float32)])


# The ops with a Caffe equivalent: those _Importer has an op_<type> handler for.
SUPPORTED_OPS = tuple(sorted(name[3:] for name in vars(_Importer) if name.startswith("op_")))

# Pad modes whose added rows and columns copy the input's (netgen: Slice + Concat).
COPY_PADS = ("reflect", "edge", "wrap")
CONSTANT_VALUES = {"value": None, "value_float": np.float32, "value_floats": np.float32,
                   "value_int": np.int64, "value_ints": np.int64}
_POOL_ATTRIBUTES = ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides")
# The attributes each handler reads (and checks the values of). Any other attribute is
# refused by name: dropping it would change what the file computes. MaxPool's storage_order
# only lays out its Indices output, which the handler refuses when used.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Constant": tuple(CONSTANT_VALUES),
    "Dropout": ("is_test", "ratio", "seed"),
    "Conv": ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"),
    "BatchNormalization": ("epsilon", "is_test", "momentum", "spatial", "training_mode"),
    "LeakyRelu": ("alpha",),
    "MaxPool": _POOL_ATTRIBUTES + ("storage_order",),
    "AveragePool": _POOL_ATTRIBUTES + ("count_include_pad",),
    "Flatten": ("axis",),
    "Reshape": ("allowzero",),
    "Squeeze": ("axes",),
    "Unsqueeze": ("axes",),
    "ReduceMean": ("axes", "keepdims", "noop_with_empty_axes"),
    "Gemm": ("alpha", "beta", "broadcast", "transA", "transB"),
    # opset < 7 spelled numpy broadcasting out; its `axis` (another alignment) is refused
    "Add": ("broadcast",), "Sub": ("broadcast",), "Mul": ("broadcast",), "Div": ("broadcast",),
    "Softmax": ("axis",),
    "Concat": ("axis",),
    "Gather": ("axis",),
    "Pad": ("mode", "pads", "value"),
    "InstanceNormalization": ("epsilon",),
    "Split": ("axis", "num_outputs", "split"),
    "Slice": ("axes", "ends", "starts"),
}


def _to_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """numpy_helper.to_array, with a damaged tensor (dims that do not match its data, an
    unknown data type) reported as a NetgenError."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # ValueError, TypeError, KeyError from onnx's tables
        raise NetgenError(f"{what}: unreadable tensor ({type(exc).__name__}: "
                          f"{first_line(exc)})") from None


def import_model(model: onnx.ModelProto, name: str | None = None) -> tuple[ir.Graph, Weights]:
    """The IR and weights of an in-memory ONNX model, normalised first (a copy: `model`
    is untouched) so that each computation reaches the op mapping in one spelling."""
    return _Importer(normalize(model), name or model.graph.name or "onnx").run()


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """An ONNX file with its external data, or a NetgenError saying why not."""
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
    except OSError as exc:
        raise NetgenError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if size > MAX_ONNX_BYTES:
        raise NetgenError(f"{name}: {size} bytes is larger than the limit of {MAX_ONNX_BYTES}")
    try:
        return onnx.load(name)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError ...
        detail = first_line(exc)
        if len(detail) > 200:  # a text-format error quotes the whole offending line
            detail = detail[:200] + " ..."
        raise NetgenError(f"{name}: not a readable ONNX model: {detail}") from None


def read_onnx(path: str | os.PathLike) -> tuple[ir.Graph, Weights]:
    """The IR and weights of an ONNX file, for ops with a Caffe equivalent."""
    graph, weights, _ = read_onnx_with_layout(path)
    return graph, weights


def read_onnx_with_layout(path: str | os.PathLike) -> tuple[ir.Graph, Weights, str]:
    """read_onnx, and the layout of the file's input: "NHWC" where the file was channels-last
    and the IR takes the same image channels-first, else "NCHW"."""
    from netgen.onnx.normalize.layout import input_layout

    model = load_model(path)
    name = model.graph.name or Path(path).stem
    model = normalize(model)
    graph, weights = _Importer(model, name).run()
    return graph, weights, input_layout(model)
