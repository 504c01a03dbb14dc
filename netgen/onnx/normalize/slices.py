"""Consecutive Slice nodes of one tensor on different axes -> one Slice.

`x[:, :, ::2, ::2]` (option A's subsample) is one Slice per axis in both PyTorch
exporters; Caffe has one layer for the pair (a strided depthwise 1x1 convolution), so the
op mapping wants them as one node. Merged only where the first Slice's output has no other
reader, every bound is a constant and the axes differ, so the merged node computes the same.
"""

from __future__ import annotations

import numpy as np
import onnx

from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes


def _parts(node: onnx.NodeProto, consts: g.Constants, rank: int | None) -> list[np.ndarray] | None:
    """starts, ends, axes, steps of an opset-10+ Slice with constant bounds, axes made
    non-negative; None where that cannot be known."""
    if len(node.input) < 3 or node.attribute:
        return None
    names = list(node.input[1:]) + [""] * (5 - len(node.input))
    values = []
    for name in names[:2]:
        if name not in consts:
            return None
        values.append(consts[name].astype(np.int64).reshape(-1))
    count = len(values[0])
    for name, default in ((names[2], np.arange(count, dtype=np.int64)),
                          (names[3], np.ones(count, np.int64))):
        if not name:
            values.append(default)
        elif name in consts:
            values.append(consts[name].astype(np.int64).reshape(-1))
        else:
            return None
    if len({len(v) for v in values}) != 1:
        return None
    axes = values[2]
    if np.any(axes < 0):
        if rank is None:
            return None
        values[2] = axes % rank
    return values


def merge_slices(model: onnx.ModelProto) -> None:
    graph = model.graph
    types = None
    taken = g.all_names(graph)
    changed = True
    while changed:
        changed = False
        consts = g.Constants(graph)
        readers = g.readers(graph)
        outputs = g.output_names(graph)
        for second in graph.node:
            if (second.op_type != "Slice" or second.domain not in ("", "ai.onnx")
                    or len(second.input) < 3 or len(second.output) != 1):
                continue
            first = g.producers(graph).get(second.input[0])
            if (first is None or first.op_type != "Slice" or len(first.input) < 3
                    or len(first.output) != 1 or first.output[0] in outputs
                    or len(readers.get(first.output[0], [])) != 1):
                continue
            if types is None:
                types = shapes.infer(model, None)
            found = types.get(first.input[0])
            rank = len(found.dims) if found is not None and found.dims is not None else None
            a, b = _parts(first, consts, rank), _parts(second, consts, rank)
            if a is None or b is None or set(a[2].tolist()) & set(b[2].tolist()):
                continue
            inputs = [first.input[0]]
            for what, x, y in zip(("starts", "ends", "axes", "steps"), a, b):
                name = g.fresh(f"{second.output[0]}_{what}", taken)
                g.set_initializer(graph, name, np.concatenate([x, y]).astype(np.int64))
                inputs.append(name)
            del second.input[:]
            second.input.extend(inputs)
            g.remove_nodes(graph, [first])
            changed = True
            break
