"""Helpers of the channels-last passes (layout, affine, pads): attributes, readers, constants.

The passes rewrite ONNX graphs in one forward walk each; these helpers build the maps they
need once per pass (dicts by tensor name), so that no pass scans the graph per node.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    """Replace (or add) one attribute, keeping the others in their order."""
    for i, attribute in enumerate(node.attribute):
        if attribute.name == name:
            node.attribute[i].CopyFrom(onnx.helper.make_attribute(name, value))
            return
    node.attribute.append(onnx.helper.make_attribute(name, value))


def node_name(node: onnx.NodeProto) -> str:
    """The name the importer's messages use for a node."""
    return node.name or f"{node.op_type}_{node.output[0] if node.output else '?'}"


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for item in node.input:
            if item:
                found.setdefault(item, []).append(node)
    return found


def array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """The tensor's values, or None where they cannot be read (a stripped or damaged
    tensor): a pass then leaves the node alone and the importer reports it."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # onnx raises ValueError, TypeError, KeyError on damaged tensors
        return None


def per_channel(value: np.ndarray, rank: int, channels: int | None = None) -> np.ndarray | None:
    """`value` as a (C,) vector if it broadcasts against a rank-`rank` NCHW tensor along
    axis 1 only (shapes (1, C, 1, 1) or (C, 1, 1)), else None."""
    if value.ndim > rank or value.ndim < rank - 1 or rank < 2:
        return None
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    if shape[0] != 1 or any(d != 1 for d in shape[2:]):
        return None
    if channels is not None and shape[1] not in (1, channels):
        return None
    return value.reshape(-1)


def replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    del graph.node[:]
    graph.node.extend(nodes)
