"""Parameters and multiply-adds counted from an ONNX file alone, as a cross-check of the IR.

Nothing here looks at netgen's IR: the figures come from the ONNX nodes, their initializers
and ONNX's own shape inference, so agreement with summary.json (counted from the IR) means
the two representations describe the same network.

- Parameters: initializers that feed Conv, Gemm, MatMul, PRelu, Mul and Add (learned
  weights, biases, slopes, standalone Scale/Bias), and BatchNormalization's scale and B (2*C).
  BatchNormalization's mean and var are statistics, not parameters. Constants that only
  realise a layer (Slice steps, Where fill values, reshape targets) are Constant nodes and
  count nothing, like option A's subsample and zero channels.
- Multiply-adds per sample: Conv = output elements per sample x (C_in / group x kh x kw);
  Gemm and MatMul against an initializer = output rows per sample x K x M.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.errors import NetgenError
from netgen.onnx.normalize import shapes as tensor_shapes

PARAM_OPS = frozenset({"Conv", "Gemm", "MatMul", "PRelu", "Mul", "Add"})
BN_PARAM_INPUTS = (1, 2)  # scale, B; 3 and 4 are mean and var


@dataclass(frozen=True)
class OnnxCounts:
    params: int
    macs: int
    params_by_op: dict[str, int] = field(default_factory=dict)
    macs_by_op: dict[str, int] = field(default_factory=dict)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Each tensor's shape as onnx infers it with data propagation and the batch fixed to 1
    (normalize.shapes): a Reshape whose target TorchScript computes by Shape -> Gather ->
    Concat, with a -1 that only a known batch resolves (timm's split attention and ECA gate),
    is known past it then. TorchScript's F.pad pads (ConstantOfShape, Slice, Transpose,
    Cast: timm's BlurPool) are beyond data propagation: the shape subgraphs are folded into
    constants on a copy first (the nodes and tensor names counted stay)."""
    from netgen.onnx.normalize import normalize
    from netgen.onnx.normalize.constants import constants_to_initializers
    from netgen.onnx.normalize.eca import drop_broadcast_expands
    from netgen.onnx.normalize.fold import fold_constants

    # The Expand to Shape(x) of timm's ECA gate depends on the batch, which folding refuses;
    # it is the broadcast its Mul does anyway and goes first (the shapes counted stay).
    try:
        folded = normalize(model, (constants_to_initializers, drop_broadcast_expands,
                                   fold_constants))
    except NetgenError:
        folded = model  # a shape subgraph folding refuses: data propagation alone
    return {name: t.dims for name, t in tensor_shapes.infer(folded, 1).items()
            if t.dims is not None}


def _fixed_subsample(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> bool:
    """A Conv whose weight is a Constant of ones, 1x1, one channel per group."""
    weight = constants.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None or len(weight.dims) != 4 or tuple(weight.dims[1:]) != (1, 1, 1):
        return False
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return group == weight.dims[0] and bool(np.all(numpy_helper.to_array(weight) == 1))


def _per_sample(shape: tuple | None, node: onnx.NodeProto, skip_last: bool = False) -> int:
    """Elements of an output per sample (axis 0 is the batch), all static."""
    if shape is None or len(shape) < 1:
        raise NetgenError(f"node {node.name!r} ({node.op_type}): output shape unknown; cannot "
                          "count multiply-adds")
    rest = shape[1:-1] if skip_last else shape[1:]
    if any(d is None for d in rest):
        raise NetgenError(f"node {node.name!r} ({node.op_type}): output shape {list(shape)} is "
                          "not static past the batch axis")
    return math.prod(rest)


def count_onnx(model: onnx.ModelProto) -> OnnxCounts:
    """Parameters and per-sample multiply-adds of `model` (initializer data not needed)."""
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    # TorchScript's exporter stores identical tensors once and hands each user an Identity of
    # it (an untrained net's BatchNorm weights are all ones): each Identity is a parameter of
    # its own, as it was in the model and is in the IR.
    # A convolution's weight or bias given as a Constant node (TorchScript writes timm's
    # BlurPool filter, a non-persistent buffer, so) is that convolution's, as in the IR.
    # netgen's own Constant-node convolution (option A's and Keras's ZeroPadding's subsample:
    # depthwise, 1x1, weight 1) realises a fixed layer and is no parameter, in the IR either.
    constants = {node.output[0]: node.attribute[0].t for node in model.graph.node
                 if node.op_type == "Constant" and len(node.attribute) == 1
                 and node.attribute[0].name == "value"}
    for node in model.graph.node:
        if node.op_type == "Conv" and not _fixed_subsample(node, constants):
            dims.update((name, tuple(constants[name].dims)) for name in node.input[1:]
                        if name in constants)
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in dims:
            dims[node.output[0]] = dims[node.input[0]]
    shapes = _shapes(model)
    counted: set[str] = set()
    params: Counter = Counter()
    macs: Counter = Counter()

    def take(name: str, op: str) -> None:
        if name in dims and name not in counted:
            counted.add(name)
            params[op] += math.prod(dims[name])

    for node in model.graph.node:
        # once per node that reads it: the dynamo exporter shares one folded constant among
        # the layers whose values are equal (an untrained net's GroupNorm gammas), each of
        # which holds it as a parameter of its own, as in the model and the IR
        counted.clear()
        op = node.op_type
        if op == "BatchNormalization":
            for i in BN_PARAM_INPUTS:
                if i < len(node.input):
                    take(node.input[i], op)
        elif op in PARAM_OPS:
            for name in node.input:
                take(name, op)
        if op == "Conv" and len(node.input) > 1 and node.input[1] in dims:
            weight = dims[node.input[1]]
            macs[op] += _per_sample(shapes.get(node.output[0]), node) * math.prod(weight[1:])
        elif op == "Gemm" and len(node.input) > 1 and node.input[1] in dims:
            # (N, K) x (K, M) or its transpose: K x M per output row
            rows = _per_sample(shapes.get(node.output[0]), node, skip_last=True)
            macs[op] += rows * math.prod(dims[node.input[1]])
        elif op == "MatMul":
            weight_name = next((n for n in node.input if n in dims), None)
            if weight_name is not None:
                rows = _per_sample(shapes.get(node.output[0]), node, skip_last=True)
                macs[op] += rows * math.prod(dims[weight_name])
    return OnnxCounts(params=sum(params.values()), macs=sum(macs.values()),
                      params_by_op=dict(sorted(params.items())),
                      macs_by_op=dict(sorted(macs.items())))
