"""Small edits of an ONNX graph shared by the normalisation passes.

The passes rewrite `model.graph` in place. Tensors are wired by name, so removing a node
means pointing its readers at another name; these helpers do that in one place, keeping the
graph's output names (what a user of the converted file asks for) unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.errors import NetgenError, first_line


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {tensor.name: tensor for tensor in graph.initializer}


def to_array(tensor: onnx.TensorProto) -> np.ndarray:
    """numpy_helper.to_array, a damaged tensor (dims that do not match its data, an unknown
    data type) reported as a NetgenError naming it."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # ValueError, TypeError, KeyError from onnx's tables
        raise NetgenError(f"initializer {tensor.name!r}: unreadable tensor "
                          f"({type(exc).__name__}: {first_line(exc)})") from None


class Constants:
    """The initializers as arrays, each converted on first use only (a network's weights
    are never copied for passes that look at small shape tensors)."""

    def __init__(self, graph: onnx.GraphProto):
        self.tensors = initializers(graph)
        self.arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            self.arrays[name] = to_array(self.tensors[name])
        return self.arrays[name]


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output if out}


def readers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor -> the nodes reading it (a node reading it twice is listed once)."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in dict.fromkeys(i for i in node.input if i):
            out.setdefault(name, []).append(node)
    return out


def output_names(graph: onnx.GraphProto) -> set[str]:
    return {value.name for value in graph.output}


def all_names(graph: onnx.GraphProto) -> set[str]:
    names = {value.name for value in graph.input} | output_names(graph)
    names |= {tensor.name for tensor in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def fresh(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3` ... whichever is not taken yet (then taken)."""
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    taken.add(candidate)
    return candidate


def rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node reading `old` reads `new` instead."""
    rename_inputs(graph, {old: new})


def rename_inputs(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Every node reading a key of `mapping` reads its value instead (one walk for all)."""
    if not mapping:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]


def set_initializer(graph: onnx.GraphProto, name: str, value: np.ndarray) -> None:
    """Add (or replace) the initializer `name` holding `value`."""
    for i, tensor in enumerate(graph.initializer):
        if tensor.name == name:
            graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
            return
    graph.initializer.append(numpy_helper.from_array(value, name))


def remove_nodes(graph: onnx.GraphProto, doomed: list[onnx.NodeProto]) -> None:
    """Delete by position, so that the passes' references to the other nodes stay valid
    (re-adding the kept nodes would copy them)."""
    ids = {id(node) for node in doomed}
    for index in reversed(range(len(graph.node))):
        if id(graph.node[index]) in ids:
            del graph.node[index]


def bypass(graph: onnx.GraphProto, node: onnx.NodeProto) -> None:
    """Remove a node whose only output equals its first input (Identity, a no-op Cast).

    Readers of the output read the input instead. Where the output is a graph output, the
    graph keeps that name: the input's producer writes it directly when nothing else needs
    the input's old name; otherwise the node stays, as an Identity (which every consumer of
    ONNX understands)."""
    source, target = node.input[0], node.output[0]
    if target not in output_names(graph):
        rename_input(graph, target, source)
        remove_nodes(graph, [node])
        return
    producer = producers(graph).get(source)
    other_readers = [n for n in readers(graph).get(source, []) if n is not node]
    if producer is not None and not other_readers and source not in output_names(graph):
        for i, name in enumerate(producer.output):
            if name == source:
                producer.output[i] = target
        remove_nodes(graph, [node])
        return
    if node.op_type != "Identity":
        identity = onnx.helper.make_node("Identity", [source], [target], name=node.name)
        node.CopyFrom(identity)


def prune(graph: onnx.GraphProto) -> None:
    """Drop nodes none of whose outputs is read or is a graph output, and initializers
    nothing reads (with their entries among the graph inputs, where old exporters list
    them: left there they would read as inputs the user must feed)."""
    wanted = output_names(graph)
    changed = True
    while changed:
        used = wanted | {name for node in graph.node for name in node.input if name}
        dead = [node for node in graph.node
                if node.output and not any(o in used for o in node.output if o)
                and not _has_subgraph(node)]
        changed = bool(dead)
        if dead:
            remove_nodes(graph, dead)
    used = wanted | {name for node in graph.node for name in node.input if name}
    unused = {t.name for t in graph.initializer if t.name not in used}
    if not unused:
        return
    for field in (graph.initializer, graph.input):  # in place: no copy of the weights
        for index in reversed(range(len(field))):
            if field[index].name in unused:
                del field[index]


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute)
