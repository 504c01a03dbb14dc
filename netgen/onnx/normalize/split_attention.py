"""timm's split attention (ResNeSt, Zhang et al. 2020) in 4-D, for the op mapping.

timm's SplitAttn (timm/layers/split_attn.py) computes, on the output x (N x R*C x H x W) of
a convolution with R * cardinality groups (R: the radix, C = cardinality * C'):

    x5 = x.reshape(N, R, C, H, W)
    gap = x5.sum(1).mean((2, 3), keepdim=True)          # -> fc1, act, fc2: a (N x R*C x 1 x 1)
    attn = softmax(a.view(N, card, R, C').transpose(1, 2), dim=1).reshape(N, R, C, 1, 1)
    out = (x5 * attn).sum(1)

Caffe's blobs have any rank, but its layers (and OpenCV's, and the IR) have no product with
a 5-D broadcast, no sum over an axis that is not the last ones and no transpose. The same
computation in 4-D, which this pass writes:

    x_0 .. x_{R-1} = Split(x, axis 1)                   # the radix parts, C channels each
    gap = Sum(x_0 .. x_{R-1})                          # replaces the ReduceSum over axis 1
    p = Softmax(a.reshape(N, card, R, C'), axis 2)      # no transpose: softmax over R in place
    p_0 .. p_{card*R-1} = Split(p.reshape(N, card*R*C', 1, 1), axis 1)
    g_r = Concat(p_{k*R + r} for k < card)             # the transpose, where card > 1
    out = Sum(x_r * g_r for r < R)                     # N x C x H x W times N x C x 1 x 1

each of which is a stock Caffe layer (Slice, Eltwise SUM, Reshape, Softmax with an axis,
Concat, and the SE unit's gate product, netgen.onnx.reader). With cardinality 1 (every
ResNeSt timm names) the transpose was a no-op on memory order and the Concat is left out.

The pass runs after `fold_constants` (the Reshape targets are constants then) and before
`to_channels_first`, which would otherwise read the radix Transpose as a channels-last
layout and refuse it. The idiom is recognised from its core, Reshape -> Transpose [0, 2, 1,
3] -> Softmax; from there on, a graph that leaves the idiom is refused in one line naming
the node, because no other pass or op mapping can express the 5-D remainder. A radix of 1
(timm's sigmoid gate) has no 5-D tensor and is an SE unit to the op mapping; it is not
touched here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from netgen.errors import NetgenError
from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes
from netgen.onnx.normalize.rewrite import attrs, node_name, replace_nodes, set_attr

_PERM = [0, 2, 1, 3]


def _refuse(node: onnx.NodeProto, message: str) -> NetgenError:
    return NetgenError(f"node {node_name(node)!r} ({node.op_type}): {message}")


@dataclass
class _Unit:
    """One split-attention unit's nodes, as found in the export."""

    x: str                        # the convolution's output, N x R*C x H x W
    radix: int
    cardinality: int
    channels: int                 # C = cardinality * C', channels of one radix part
    view: onnx.NodeProto          # Reshape (N, card, R, C') of the attention logits
    transpose: onnx.NodeProto
    softmax: onnx.NodeProto
    gate: onnx.NodeProto          # the last Reshape, to (N, R, C, 1, 1)
    mul: onnx.NodeProto           # x5 * gate
    total: onnx.NodeProto         # ReduceSum over the radix axis: the unit's output
    gap: onnx.NodeProto           # ReduceSum over the radix axis of x5: the pooled branch


def split_attention_to_4d(model: onnx.ModelProto) -> None:
    """Every split-attention unit of `model` in 4-D (see the module docstring), found from
    its radix Transpose; other Transposes are left to the layout pass."""
    graph = model.graph
    cores = [n for n in graph.node if n.op_type == "Transpose"
             and [int(p) for p in attrs(n).get("perm", [])] == _PERM]
    if not cores:
        return
    producer = g.producers(graph)
    readers = g.readers(graph)
    consts = g.Constants(graph)
    outputs = g.output_names(graph)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inferred: dict[str, shapes.TensorType] | None = None
    units = []
    for transpose in cores:
        view = producer.get(transpose.input[0])
        users = readers.get(transpose.output[0], [])
        if view is None or view.op_type != "Reshape" or len(users) != 1 \
                or users[0].op_type != "Softmax" or transpose.output[0] in outputs:
            continue  # not a radix softmax: the layout pass's to judge
        if inferred is None:
            inferred = shapes.infer(model, None)
        units.append(_match(transpose, view, users[0], producer, readers, consts, outputs,
                            inferred, opset))
    if not units:
        return
    taken = g.all_names(graph)
    replacement: dict[int, list[onnx.NodeProto]] = {}
    for unit in units:
        _rewrite(graph, unit, taken, opset, replacement)
    nodes = []
    for node in graph.node:
        nodes.extend(replacement.get(id(node), [node]))
    replace_nodes(graph, nodes)
    g.prune(graph)


def _dims(inferred: dict[str, shapes.TensorType], name: str) -> tuple | None:
    t = inferred.get(name)
    return None if t is None or t.dims is None else tuple(t.dims)


def _only_reader(readers: dict, outputs: set[str], node: onnx.NodeProto) -> onnx.NodeProto | None:
    users = readers.get(node.output[0], [])
    return users[0] if len(users) == 1 and node.output[0] not in outputs else None


def _radix_sum(node: onnx.NodeProto | None, consts: g.Constants) -> bool:
    """Whether `node` is a ReduceSum over axis 1 that drops the axis (x5.sum(1))."""
    if node is None or node.op_type != "ReduceSum" or int(attrs(node).get("keepdims", 1)) != 0:
        return False
    axes = attrs(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1] in consts:
        axes = consts[node.input[1]].reshape(-1).tolist()
    return axes is not None and [int(a) for a in axes] in ([1], [-4])


def _match(transpose, view, softmax, producer, readers, consts, outputs, inferred,
           opset) -> _Unit:
    why = "(split attention: Caffe has no 5-D product or transpose, so only timm's SplitAttn " \
          "idiom is rewritten)"
    logits = _dims(inferred, view.output[0])
    if logits is None or len(logits) != 4 or None in logits[1:]:
        raise _refuse(transpose, f"a radix softmax transpose of a tensor of unknown shape {why}")
    _, card, radix, width = logits
    if opset < 13 or int(attrs(softmax).get("axis", -1)) % 4 != 1:
        raise _refuse(softmax, f"a softmax that is not over the radix axis 1 of the transposed "
                      f"(N, {radix}, {card}, {width}) gate (opset {opset}) {why}")
    source = _dims(inferred, view.input[0])
    if source is None or source[1:] != (card * radix * width, 1, 1):
        raise _refuse(view, f"the radix softmax's logits are {list(source or ())}, not the "
                      f"N x {card * radix * width} x 1 x 1 output of the attention's fc2 {why}")
    channels = card * width
    # Softmax -> Reshape ... -> Reshape to (N, R, C, 1, 1), one reader each.
    gate, dims = softmax, None
    while dims is None or len(dims) != 5:
        after = _only_reader(readers, outputs, gate)
        if after is None or after.op_type != "Reshape":
            break
        gate, dims = after, _dims(inferred, after.output[0]) or ()
    if gate is softmax or (dims or ())[1:] != (radix, channels, 1, 1):
        raise _refuse(gate, f"the radix softmax does not end in a reshape to (N, {radix}, "
                      f"{channels}, 1, 1) {why}")
    mul = _only_reader(readers, outputs, gate)
    if mul is None or mul.op_type != "Mul" or len(mul.input) != 2 \
            or mul.input[0] == mul.input[1]:
        raise _refuse(gate, f"the radix gate is not multiplied, alone, with the radix parts "
                      f"of a convolution's output {why}")
    x5 = mul.input[1] if mul.input[0] == gate.output[0] else mul.input[0]
    view5 = producer.get(x5)
    x = view5.input[0] if view5 is not None and view5.op_type == "Reshape" else None
    shape = _dims(inferred, x) if x else None
    if x is None or shape is None or len(shape) != 4 or shape[1] != radix * channels \
            or None in shape[2:] \
            or (_dims(inferred, x5) or ())[1:] != (radix, channels, *shape[2:]):
        raise _refuse(mul, f"the radix gate multiplies {x5!r}, not an N x {radix} x {channels} "
                      f"x H x W view of an N x {radix * channels} x H x W tensor {why}")
    total = _only_reader(readers, outputs, mul)
    if not _radix_sum(total, consts):
        raise _refuse(total or mul, f"the radix parts times their gates are not summed over the "
                      f"radix axis (ReduceSum axis 1, keepdims 0) {why}")
    others = [n for n in readers.get(x5, []) if n is not mul]
    if len(others) != 1 or not _radix_sum(others[0], consts) or x5 in outputs:
        raise _refuse(view5, f"the radix parts {x5!r} are read other than by the unit's product "
                      f"and one sum over the radix axis (the pooled branch) {why}")
    return _Unit(x, radix, card, channels, view, transpose, softmax, gate, mul, total, others[0])


def _split(graph: onnx.GraphProto, taken: set[str], opset: int, x: str, parts: int, size: int,
           stem: str) -> tuple[onnx.NodeProto, list[str]]:
    """A Split of `x` along the channels into `parts` pieces of `size` each."""
    outs = [g.fresh(f"{stem}_{i}", taken) for i in range(parts)]
    if opset >= 13:
        sizes = g.fresh(f"{stem}_sizes", taken)
        g.set_initializer(graph, sizes, np.full(parts, size, np.int64))
        node = onnx.helper.make_node("Split", [x, sizes], outs, name=stem, axis=1)
    else:
        node = onnx.helper.make_node("Split", [x], outs, name=stem, axis=1, split=[size] * parts)
    return node, outs


def _rewrite(graph, unit: _Unit, taken: set[str], opset: int,
             replacement: dict[int, list[onnx.NodeProto]]) -> None:
    stem = node_name(unit.total)
    r, card, width = unit.radix, unit.cardinality, unit.channels // unit.cardinality
    # The pooled branch: the radix parts summed, where the ReduceSum of x5 was.
    cut, parts = _split(graph, taken, opset, unit.x, r, unit.channels,
                        g.fresh(f"{stem}_radix", taken))
    gap = onnx.helper.make_node("Sum", parts, [unit.gap.output[0]], name=node_name(unit.gap))
    replacement[id(unit.gap)] = [cut, gap]
    # The softmax over R in the untransposed (N, card, R, C') view.
    replacement[id(unit.transpose)] = []
    unit.softmax.input[0] = unit.view.output[0]
    set_attr(unit.softmax, "axis", 2)
    # Its result as N x card*R*C' x 1 x 1, cut into the R gates (k, r order -> r's gate).
    target = g.fresh(f"{unit.gate.output[0]}_4d", taken)
    g.set_initializer(graph, target, np.array([0, r * unit.channels, 1, 1], np.int64))
    unit.gate.input[0] = unit.softmax.output[0]
    unit.gate.input[1] = target
    set_attr(unit.gate, "allowzero", 0)
    pieces_cut, pieces = _split(graph, taken, opset, unit.gate.output[0], card * r, width,
                                g.fresh(f"{stem}_gate", taken))
    gates_nodes: list[onnx.NodeProto] = [unit.gate, pieces_cut]
    gates = pieces
    if card > 1:
        gates = [g.fresh(f"{stem}_gate_r{i}", taken) for i in range(r)]
        gates_nodes += [onnx.helper.make_node("Concat", [pieces[k * r + i] for k in range(card)],
                                              [gates[i]], name=gates[i], axis=1)
                        for i in range(r)]
    replacement[id(unit.gate)] = gates_nodes
    # The products and their sum, where the sum over the radix axis was.
    products = [g.fresh(f"{stem}_r{i}", taken) for i in range(r)]
    muls = [onnx.helper.make_node("Mul", [parts[i], gates[i]], [products[i]], name=products[i])
            for i in range(r)]
    replacement[id(unit.mul)] = []
    replacement[id(unit.total)] = muls + [
        onnx.helper.make_node("Sum", products, [unit.total.output[0]], name=stem)]
