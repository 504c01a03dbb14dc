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
    graph = model.graph
    types = None
    for node in list(graph.node):
        if node.domain not in ("", "ai.onnx") or len(node.input) != 1 or len(node.output) != 1:
            continue
        if node.op_type == "Identity":
            g.bypass(graph, node)
        elif node.op_type == "Cast":
            if types is None:
                types = shapes.infer(model, None)
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            source = types.get(node.input[0])
            if to is not None and source is not None and source.elem_type == to:
                g.bypass(graph, node)
