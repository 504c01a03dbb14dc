"""Drop nodes that compute their input unchanged: Identity, and a Cast to the type the
tensor already has (the TorchScript exporter's float -> float after arithmetic on
activations, int64 -> int64 on shape tensors).

Removing them lets the other passes and the op mapping see the patterns they look for
(a Slice feeding a Slice, a Pad reading a constant) without looking through wrappers.
"""

from __future__ import annotations

import onnx

from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes


def drop_noops(model: onnx.ModelProto) -> None:
    """In one walk (Keras's exports have a Cast after nearly every op: renaming the readers
    of each one by a scan of the graph would be quadratic): readers of a no-op's output read
    its input, resolved through chains of no-ops, and the no-ops go in one deletion. A no-op
    writing a graph output is left to g.bypass, which keeps that name."""
    graph = model.graph
    outputs = g.output_names(graph)
    types = None
    alias: dict[str, str] = {}
    doomed: list[onnx.NodeProto] = []
    writing_outputs: list[onnx.NodeProto] = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        if node.domain not in ("", "ai.onnx") or len(node.input) != 1 or len(node.output) != 1:
            continue
        if node.op_type == "Cast":
            if types is None:
                types = shapes.infer(model, None)
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            source = types.get(node.input[0])
            if to is None or source is None or source.elem_type != to:
                continue
        elif node.op_type != "Identity":
            continue
        if node.output[0] in outputs:
            writing_outputs.append(node)
        else:
            alias[node.output[0]] = node.input[0]
            doomed.append(node)
    g.remove_nodes(graph, doomed)
    for node in writing_outputs:
        g.bypass(graph, node)
