"""timm's selective-kernel unit (Li et al., "Selective Kernel Networks", CVPR 2019) in 4-D.

timm's `SelectiveKernel` runs P paths (convolutions of other kernels or dilations, on all
the input channels or, with `split_input`, each on its share), stacks them into one 5-D
tensor and mixes them with an attention computed from their sum:

    x = torch.stack(paths, 1)                         # N x P x C x H x W
    a = fc_select(relu(bn(fc_reduce(x.sum(1).mean((2, 3), keepdim=True)))))   # N x PC x 1 x 1
    a = torch.softmax(a.view(N, P, C, 1, 1), dim=1)   # over the paths, per channel
    out = (x * a).sum(1)                              # N x C x H x W

Both exporters write the stack as Unsqueeze(axis 1) of each path and a Concat on axis 1, the
sums as ReduceSum over axis 1 (keepdims 0), the view as a 5-D Reshape (constant after
`fold_constants`). Caffe has no sum over one axis, and its Eltwise does not broadcast the
N x P x C x 1 x 1 weights over H and W; but every step has a 4-D equivalent that computes the
same numbers:

- the sum of the stacked paths is the Sum of the paths (Eltwise SUM);
- the N x PC x 1 x 1 attention viewed as N x P x C x 1 (Reshape), Softmax over axis 1 (the
  same P values per channel), Split along axis 1 into P tensors N x 1 x C x 1, each viewed as
  N x C x 1 x 1 (the gate of one path);
- the weighted sum: each path times its gate (the importer's SE-style gate product: a Mul
  of N x C x H x W by N x C x 1 x 1), added up by Adds.

`sk_to_4d` runs after `fold_constants` (the Reshape target and the ReduceSum axes are
constants then). A stack of 4-D tensors (Concat on axis 1 of Unsqueezes on axis 1) that a
ReduceSum over axis 1 reads is taken for this unit; any step of it that is not the idiom
above (a softmax over another axis, a view that groups the channels otherwise, the stack
read by something else) is refused in one line naming the node. A stack no ReduceSum reads
is left alone for the op mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from netgen.errors import NetgenError
from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes
from netgen.onnx.normalize.rewrite import attrs, node_name, replace_nodes

WHAT = "timm's selective-kernel unit"


def _fail(node: onnx.NodeProto, message: str) -> NetgenError:
    return NetgenError(f"node {node_name(node)!r} ({node.op_type}): {message}")


@dataclass
class _Unit:
    """One selective-kernel unit, found at its stack (the Concat)."""

    stack: onnx.NodeProto
    unsqueezes: list[onnx.NodeProto]
    paths: list[str]          # the P path tensors, N x C x H x W each
    channels: int
    total: onnx.NodeProto | None = None    # ReduceSum of the stack: the attention's input
    view: onnx.NodeProto | None = None     # Reshape N x PC x 1 x 1 -> N x P x C x 1 x 1
    softmax: onnx.NodeProto | None = None
    product: onnx.NodeProto | None = None  # Mul of the stack by the softmax
    mixed: onnx.NodeProto | None = None    # ReduceSum of the product: the unit's output

    def where(self) -> str:
        return f"{WHAT} of {len(self.paths)} paths stacked at {node_name(self.stack)!r}"


class _Graph:
    """The maps one pass over a model needs, built once."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.consts = g.Constants(graph)
        self.producer = g.producers(graph)
        self.readers = g.readers(graph)
        self.outputs = g.output_names(graph)
        self.inferred = shapes.infer(model, None)

    def axes(self, node: onnx.NodeProto) -> list[int] | None:
        a = attrs(node)
        if "axes" in a:
            return [int(v) for v in a["axes"]]
        if len(node.input) > 1 and node.input[1] and node.input[1] in self.consts:
            return [int(v) for v in self.consts[node.input[1]].reshape(-1)]
        return None

    def dims(self, tensor: str) -> list | None:
        """The tensor's dims, "N" for a symbolic batch (as the messages show them)."""
        t = self.inferred.get(tensor)
        if t is None or t.dims is None:
            return None
        return ["N" if d is None and i == 0 else d for i, d in enumerate(t.dims)]

    def stack(self, node: onnx.NodeProto) -> _Unit | None:
        """The unit whose stack `node` is: a Concat on axis 1 of Unsqueezes of 4-D tensors of
        one shape, read by a ReduceSum; or None (left for the op mapping)."""
        if node.op_type != "Concat" or len(node.input) < 2 \
                or int(attrs(node).get("axis", 0)) % 5 != 1 \
                or not any(u.op_type == "ReduceSum" for u in self.readers.get(node.output[0], [])):
            return None
        unsqueezes = [self.producer.get(name) for name in node.input]
        if any(u is None or u.op_type != "Unsqueeze" for u in unsqueezes):
            return None
        paths = [u.input[0] for u in unsqueezes]
        dims = [self.dims(p) for p in paths]
        if any(d is None or len(d) != 4 or None in d for d in dims) \
                or any(d[1:] != dims[0][1:] for d in dims):
            return None
        return _Unit(node, unsqueezes, paths, int(dims[0][1]))

    def only_reader(self, tensor: str, op: str, unit: _Unit, node: onnx.NodeProto,
                    why: str) -> onnx.NodeProto:
        users = self.readers.get(tensor, [])
        if tensor in self.outputs or len(users) != 1 or users[0].op_type != op:
            found = ", ".join(f"{node_name(u)!r} ({u.op_type})" for u in users) or "nothing"
            if tensor in self.outputs:
                found += " and the graph's outputs"
            raise _fail(node, f"its output is read by {found} in {unit.where()}; Caffe can "
                        f"express the unit only where one {op} ({why}) reads it")
        return users[0]

    def made_by(self, tensor: str, op: str, unit: _Unit, node: onnx.NodeProto,
                why: str) -> onnx.NodeProto:
        source = self.producer.get(tensor)
        if source is None or source.op_type != op:
            found = "a graph input or constant" if source is None else \
                f"{node_name(source)!r} ({source.op_type})"
            raise _fail(node, f"its input {tensor!r} comes from {found} in {unit.where()}; "
                        f"Caffe can express the unit only with a {op} ({why}) there")
        return source

    def sum_over_paths(self, node: onnx.NodeProto, unit: _Unit) -> None:
        axes = self.axes(node)
        if axes is None or [a % 5 for a in axes] != [1]:
            raise _fail(node, f"sums axes {axes} in {unit.where()}; only the sum over the "
                        "paths (axis 1) maps onto Caffe (Eltwise SUM)")
        if int(attrs(node).get("keepdims", 1)) != 0:
            raise _fail(node, f"keepdims=1 in {unit.where()}: the 5-D sum it keeps has no "
                        "Caffe equivalent; only keepdims=0 (an N x C x H x W sum) maps")

    def match(self, unit: _Unit) -> None:
        """Fill in the unit's nodes, or raise naming the first that is not the idiom."""
        stack, p, c = unit.stack, len(unit.paths), unit.channels
        for unsqueeze in unit.unsqueezes:
            axes = self.axes(unsqueeze)
            if axes is None or [a % 5 for a in axes] != [1] \
                    or len(self.readers.get(unsqueeze.output[0], [])) != 1 \
                    or unsqueeze.output[0] in self.outputs:
                raise _fail(unsqueeze, f"stacks a path on axes {axes} (or is read elsewhere) in "
                            f"{unit.where()}; only torch.stack(paths, 1), read by the stack "
                            "alone, maps onto Caffe")
        users = self.readers.get(stack.output[0], [])
        totals = [u for u in users if u.op_type == "ReduceSum" and u.input[0] == stack.output[0]]
        products = [u for u in users if u.op_type == "Mul"]
        if len(totals) != 1 or len(products) != 1 or len(users) != 2 \
                or stack.output[0] in self.outputs:
            found = ", ".join(f"{node_name(u)!r} ({u.op_type})" for u in users)
            raise _fail(stack, f"the stack is read by {found} in {unit.where()}; Caffe can "
                        "express the unit only where one ReduceSum over the paths (the "
                        "attention's input) and one Mul (the weighting) read it")
        unit.total, unit.product = totals[0], products[0]
        self.sum_over_paths(unit.total, unit)
        product = unit.product
        weights = product.input[1] if product.input[0] == stack.output[0] else product.input[0]
        unit.softmax = softmax = self.made_by(weights, "Softmax", unit, product,
                                              "the attention's softmax over the paths")
        axis = int(attrs(softmax).get("axis", -1))
        dims = self.dims(softmax.input[0])
        if dims is None or len(dims) != 5 or axis % 5 != 1:
            raise _fail(softmax, f"a softmax over axis {axis} of {dims} in {unit.where()}; only "
                        f"the softmax over the {p} paths (axis 1 of N x {p} x C x 1 x 1) maps "
                        "onto Caffe (Softmax with axis 1)")
        if dims[1:] != [p, c, 1, 1]:
            raise _fail(softmax, f"a softmax of an input of shape {dims} in {unit.where()}; "
                        f"only N x {p} x {c} x 1 x 1 (one weight per path and channel) maps "
                        "onto Caffe")
        self.only_reader(softmax.output[0], "Mul", unit, softmax, "the weighting of the paths")
        unit.view = self.made_by(softmax.input[0], "Reshape", unit, softmax,
                                 "the attention viewed as N x P x C x 1 x 1")
        self.only_reader(unit.view.output[0], "Softmax", unit, unit.view,
                         "the attention's softmax")
        source = self.dims(unit.view.input[0])
        if source is None or len(source) != 4 or source[1:] != [p * c, 1, 1]:
            raise _fail(unit.view, f"views an attention of shape {source} as {dims} in "
                        f"{unit.where()}; only N x {p * c} x 1 x 1 (path-major, as timm's "
                        "fc_select writes it) maps onto Caffe")
        unit.mixed = self.only_reader(product.output[0], "ReduceSum", unit, product,
                                      "the sum of the weighted paths")
        self.sum_over_paths(unit.mixed, unit)


def _rewrite(unit: _Unit, graph: onnx.GraphProto, taken: set[str],
             opset: int) -> dict[int, list]:
    """The nodes that replace the unit's, keyed by the id of the node they take the place of
    (an empty list: the node goes)."""
    p, c = len(unit.paths), unit.channels
    base = node_name(unit.product)
    out: dict[int, list] = {id(n): [] for n in (*unit.unsqueezes, unit.stack)}
    # The attention's input: the sum of the paths, where the ReduceSum of the stack was.
    out[id(unit.total)] = [helper.make_node("Sum", list(unit.paths), [unit.total.output[0]],
                                            name=node_name(unit.total))]
    # The view as N x P x C x 1, the softmax over its axis 1.
    shape = g.fresh(f"{unit.view.output[0]}_4d", taken)
    g.set_initializer(graph, shape, np.array([0, p, c, 1], np.int64))
    out[id(unit.view)] = [helper.make_node("Reshape", [unit.view.input[0], shape],
                                           [unit.view.output[0]], name=node_name(unit.view))]
    out[id(unit.softmax)] = [helper.make_node("Softmax", [unit.view.output[0]],
                                              [unit.softmax.output[0]],
                                              name=node_name(unit.softmax), axis=1)]
    # The gates: Split along the paths, each N x 1 x C x 1 viewed as N x C x 1 x 1; each path
    # times its gate; the products added up.
    pieces = [g.fresh(f"{unit.softmax.output[0]}_path{i}", taken) for i in range(p)]
    gate_shape = g.fresh(f"{base}_gate_shape", taken)
    g.set_initializer(graph, gate_shape, np.array([0, c, 1, 1], np.int64))
    split = g.fresh(f"{base}_split", taken)
    if opset >= 13:  # the sizes as an input
        sizes = g.fresh(f"{base}_split_sizes", taken)
        g.set_initializer(graph, sizes, np.ones(p, np.int64))
        nodes = [helper.make_node("Split", [unit.softmax.output[0], sizes], pieces,
                                  name=split, axis=1)]
    else:
        nodes = [helper.make_node("Split", [unit.softmax.output[0]], pieces, name=split,
                                  axis=1, split=[1] * p)]
    products = []
    for i, (path, piece) in enumerate(zip(unit.paths, pieces)):
        gate = g.fresh(f"{piece}_gate", taken)
        nodes.append(helper.make_node("Reshape", [piece, gate_shape], [gate],
                                      name=g.fresh(f"{base}_gate{i}", taken)))
        products.append(g.fresh(f"{unit.product.output[0]}_path{i}", taken))
        nodes.append(helper.make_node("Mul", [path, gate], [products[-1]],
                                      name=g.fresh(f"{base}_path{i}", taken)))
    out[id(unit.product)] = nodes
    mixed = unit.mixed
    adds, running = [], products[0]
    for i, product in enumerate(products[1:], start=1):
        last = i == p - 1
        output = mixed.output[0] if last else g.fresh(f"{mixed.output[0]}_{i}", taken)
        name = node_name(mixed) if last else g.fresh(f"{node_name(mixed)}_{i}", taken)
        adds.append(helper.make_node("Add", [running, product], [output], name=name))
        running = output
    out[id(mixed)] = adds
    return out


def sk_to_4d(model: onnx.ModelProto) -> None:
    graph = model.graph
    if not any(n.op_type == "ReduceSum" for n in graph.node):
        return
    view = _Graph(model)
    taken = g.all_names(graph)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    replaced: dict[int, list] = {}
    for node in graph.node:
        unit = view.stack(node)
        if unit is None:
            continue
        view.match(unit)
        replaced.update(_rewrite(unit, graph, taken, opset))
    if not replaced:
        return
    nodes = []
    for node in graph.node:
        nodes.extend(replaced.get(id(node), [node]))
    replace_nodes(graph, nodes)
