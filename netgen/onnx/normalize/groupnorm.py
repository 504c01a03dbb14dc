"""GroupNorm (and InstanceNorm) in ops that map onto stock Caffe layers exactly.

PyTorch exports `nn.GroupNorm(G, C)` (timm's resnet50_gn) as Reshape (N, G, -1) ->
InstanceNormalization (scale 1, bias 0) -> Reshape (N, C, H, W) -> Mul gamma -> Add beta.
Caffe has no InstanceNorm, and its MVN divides by sqrt(var) + eps, not by sqrt(var + eps)
as InstanceNormalization does, so MVN's variance is never used. `instance_norm_to_ops`
writes each InstanceNormalization(x, s, b, eps) over an N x G x L (or N x C x H x W) input as

    r  = Reshape(x, (0, G, L, 1))          # 4-D, as Caffe's MVN and Pooling need (the
                                           # exporter's Reshape (N, G, -1) retargeted)
    d  = r - GlobalAveragePool(r)          # Caffe's MVN, normalize_variance false
    v  = GlobalAveragePool(d * d)          # Eltwise PROD, global average Pooling
    k  = Pow(v + eps, -0.5)                # Power (power -0.5, shift eps): the formula
    n  = d * k                             # Flatten + two-bottom Scale (axis 0)
    n  = n * s + b                         # only where s, b are not 1 and 0 (a Scale)

each of which the op mapping (netgen.onnx.reader) turns into one Caffe layer; BVLC Caffe
and OpenCV compute every one of them as ONNX does. The N x G x L x 1 result feeds the
exporter's Reshape back to N x C x H x W directly where that Reshape copies no axis but the
batch; otherwise a Reshape to the InstanceNormalization's own output shape is added. The
gamma/beta Mul and Add after it stay for the op mapping (a Scale with bias).

It runs after `fold_constants` (the Reshape back to x's shape is a constant then). An
InstanceNormalization whose input is not 3-D or 4-D, or whose shape is unknown, is left for
the op mapping to refuse by name.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes
from netgen.onnx.normalize.rewrite import attrs, node_name, replace_nodes


def instance_norm_to_ops(model: onnx.ModelProto) -> None:
    graph = model.graph
    if not any(n.op_type == "InstanceNormalization" for n in graph.node):
        return
    consts = g.Constants(graph)
    producers = g.producers(graph)
    readers = g.readers(graph)
    outputs = g.output_names(graph)
    inferred = shapes.infer(model, None)
    taken = g.all_names(graph)
    nodes: list[onnx.NodeProto] = []
    stale: set[str] = set()
    for node in graph.node:
        x = inferred.get(node.input[0]) if node.op_type == "InstanceNormalization" else None
        if (x is None or x.dims is None or len(x.dims) not in (3, 4)
                or any(d is None for d in x.dims[1:]) or len(node.input) != 3
                or node.input[1] not in consts or node.input[2] not in consts):
            nodes.append(node)
            continue
        nodes.extend(_chain(graph, node, x.dims, consts, producers, readers, outputs, taken))
        stale.update((node.input[0], node.output[0]))
    replace_nodes(graph, nodes)
    # shapes an exporter recorded for the tensors rewritten (N x G x L is now 4-D)
    kept = [v for v in graph.value_info if v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _chain(graph, node, dims, consts, producers, readers, outputs, taken) -> list[onnx.NodeProto]:
    name = node_name(node)
    groups, length = int(dims[1]), int(np.prod(dims[2:]))
    eps = float(attrs(node).get("epsilon", 1e-5))
    scale = consts[node.input[1]].astype(np.float32).reshape(-1)
    bias = consts[node.input[2]].astype(np.float32).reshape(-1)

    def tensor(what: str) -> str:
        return g.fresh(f"{name}_{what}", taken)

    def const(what: str, value: np.ndarray) -> str:
        label = tensor(what)
        g.set_initializer(graph, label, value)
        return label

    out: list[onnx.NodeProto] = []

    def op(op_type: str, inputs: list[str], what: str, output: str | None = None) -> str:
        result = output or tensor(what)
        out.append(helper.make_node(op_type, inputs, [result], name=f"{name}/{what}"))
        return result

    shape4 = const("shape4", np.array([0, groups, length, 1], np.int64))
    source = producers.get(node.input[0])
    if (len(dims) == 3 and source is not None and source.op_type == "Reshape"
            and len(readers.get(node.input[0], [])) == 1 and node.input[0] not in outputs):
        source.input[1] = shape4  # the exporter's Reshape (N, G, -1) made 4-D
        r = node.input[0]
    else:
        r = op("Reshape", [node.input[0], shape4], "reshape")
    mean = op("GlobalAveragePool", [r], "mean")
    centred = op("Sub", [r, mean], "centred")
    square = op("Mul", [centred, centred], "square")
    var = op("GlobalAveragePool", [square], "var")
    shifted = op("Add", [var, const("eps", np.array(eps, np.float32))], "var_eps")
    rstd = op("Pow", [shifted, const("power", np.array(-0.5, np.float32))], "rstd")
    result = op("Mul", [centred, rstd], "normalized")
    if not np.all(scale == 1.0) or not np.all(bias == 0.0):
        per_group = (groups, 1, 1)
        result = op("Mul", [result, const("scale", scale.reshape(per_group))], "scaled")
        result = op("Add", [result, const("bias", bias.reshape(per_group))], "affine")
    users = readers.get(node.output[0], [])
    direct = node.output[0] not in outputs and users and all(
        u.op_type == "Reshape" and u.input[0] == node.output[0] and u.input[1] in consts
        and 0 not in consts[u.input[1]].reshape(-1)[1:] for u in users)
    if len(dims) == 3 and direct:
        for user in users:
            user.input[0] = result
    else:  # back to the input's own shape, under the node's output name
        target = const("shape", np.array([0, *dims[1:]], np.int64))
        op("Reshape", [result, target], "restore", output=node.output[0])
    return out
