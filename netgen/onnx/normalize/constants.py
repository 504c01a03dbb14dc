"""Constant nodes -> initializers; an Identity of a constant -> the constant itself.

PyTorch's exporters write small tensors (reshape targets, slice bounds, pads) as Constant
nodes, and the TorchScript exporter sometimes passes a weight through an Identity. Later
passes and the op mapping ask one question, "is this input an initializer?", so every
constant becomes one here, whichever way the file spelled it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from netgen.errors import NetgenError, first_line
from netgen.onnx.normalize import graph as g

# The Constant attributes with a tensor value, and how each becomes an array. sparse_value
# and the string forms have no meaning for a Caffe network; they stay nodes and the op
# mapping reports them.
_VALUES = {
    "value": None,
    "value_float": np.float32, "value_floats": np.float32,
    "value_int": np.int64, "value_ints": np.int64,
}


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The tensor a Constant node holds, or None for a form without a Caffe meaning."""
    if len(node.attribute) != 1 or node.attribute[0].name not in _VALUES:
        return None
    attribute = node.attribute[0]
    try:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        return np.asarray(helper.get_attribute_value(attribute), _VALUES[attribute.name])
    except Exception as exc:  # a damaged tensor: dims that do not match its data
        raise NetgenError(f"node {node.name or node.output[0]!r} (Constant): unreadable "
                          f"tensor ({type(exc).__name__}: {first_line(exc)})") from None


def constants_to_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    known = set(g.initializers(graph))
    outputs = g.output_names(graph)
    done: list[onnx.NodeProto] = []
    renamed: dict[str, str] = {}  # Identity output -> the initializer it passes on
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            continue
        name = node.output[0]
        if node.op_type == "Constant":
            value = constant_value(node)
            if value is None or name in known or name in outputs:
                continue  # a graph output keeps its node (an output must be computed)
            g.set_initializer(graph, name, value)
            known.add(name)
            done.append(node)
        elif node.op_type == "Identity" and node.input and node.input[0] in known:
            if name in outputs or name in known:
                continue  # a graph output keeps its node (an output must be computed)
            renamed[name] = renamed.get(node.input[0], node.input[0])
            known.add(name)  # an Identity of this one is a constant too
            done.append(node)
    g.remove_nodes(graph, done)
    g.rename_inputs(graph, renamed)
