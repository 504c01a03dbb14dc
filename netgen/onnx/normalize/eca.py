"""Two rewrites for timm's ECA (efficient channel attention, Wang et al. 2020) gate, whose
PyTorch is `y = x.mean((2, 3)).view(N, 1, -1); y = conv1d(y); x * sigmoid(y).view(N, -1, 1,
1).expand_as(x)`:

- `drop_broadcast_expands`: an Expand whose target shape is the shape of the tensor it is
  multiplied by (or added to) is the broadcast the Mul does anyway: Mul(t, Expand(y,
  shape(t))) equals Mul(t, y) for any y that broadcasts to t. The TorchScript exporter
  spells the target as Shape(t), which depends on the batch and is otherwise refused by
  constant folding; the dynamo exporter spells it as t's (static) shape. So this pass runs
  before `fold_constants`, and the Shape nodes left unread go with `prune_unused`.
- `eca_to_2d`: Caffe has no 1-D convolution. The gate's conv1d across the channels (one
  input and one output channel, kernel k, padding k // 2) is a 2-D convolution with kernel
  1 x k on the pooled vector laid out as N x 1 x 1 x C, so the pattern
  mean(H, W) -> Reshape (N, 1, C) -> Conv1d -> Sigmoid -> Reshape (N, C, 1, 1) becomes
  GlobalAveragePool -> Reshape (0, 1, 1, -1) -> Conv 1 x k -> Sigmoid -> Reshape (0, -1, 1,
  1), the IR's one spelling of an ECA gate (netgen.arch.builder.eca_gate). It runs after
  `fold_constants` (the Reshape targets are constants then). A 1-D convolution outside
  this pattern is left alone for the op mapping to refuse by name.
"""

from __future__ import annotations

import numpy as np
import onnx

from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes
from netgen.onnx.normalize.rewrite import attrs, set_attr

# Elementwise ops with multidirectional broadcasting, for which an Expand of one operand to
# the other's shape changes nothing.
_BROADCASTING = ("Mul", "Add")


def drop_broadcast_expands(model: onnx.ModelProto) -> None:
    graph = model.graph
    if not any(n.op_type == "Expand" for n in graph.node):
        return
    producer = g.producers(graph)
    readers = g.readers(graph)
    consts = g.Constants(graph)
    outputs = g.output_names(graph)
    inferred: dict[str, shapes.TensorType] | None = None
    doomed: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "Expand" or node.domain not in ("", "ai.onnx") \
                or len(node.input) != 2 or node.output[0] in outputs:
            continue
        users = readers.get(node.output[0], [])
        if not users or any(u.op_type not in _BROADCASTING or len(u.input) != 2
                            or u.input[0] == u.input[1] for u in users):
            continue
        others = [u.input[1] if u.input[0] == node.output[0] else u.input[0] for u in users]
        target = node.input[1]
        source = producer.get(target)
        if source is not None and source.op_type == "Shape" and not source.attribute:
            ok = all(o == source.input[0] for o in others)
        elif target in consts:
            if inferred is None:
                inferred = shapes.infer(model, None)
            wanted = tuple(int(d) for d in consts[target].reshape(-1))
            ok = all((t := inferred.get(o)) is not None and t.known and t.dims == wanted
                     for o in others)
        else:
            ok = False
        if not ok:
            continue
        for user in users:
            for i, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[i] = node.input[0]
        doomed.append(node)
    g.remove_nodes(graph, doomed)


def _single_reader(readers: dict, tensor: str, op: str, outputs: set[str]):
    users = readers.get(tensor, [])
    if tensor in outputs or len(users) != 1 or users[0].op_type != op:
        return None
    return users[0]


def eca_to_2d(model: onnx.ModelProto) -> None:
    graph = model.graph
    consts = g.Constants(graph)
    convs = [n for n in graph.node if n.op_type == "Conv" and len(n.input) >= 2
             and n.input[1] in consts and len(consts.tensors[n.input[1]].dims) == 3]
    if not convs:
        return
    producer = g.producers(graph)
    readers = g.readers(graph)
    outputs = g.output_names(graph)
    inferred = shapes.infer(model, None)
    taken = g.all_names(graph)
    for conv in convs:
        weight = consts[conv.input[1]]
        a = attrs(conv)
        k = int(weight.shape[2])
        pads = [int(p) for p in a.get("pads", [0, 0])]
        if weight.shape[:2] != (1, 1) or int(a.get("group", 1)) != 1 \
                or [int(s) for s in a.get("strides", [1])] != [1] \
                or [int(d) for d in a.get("dilations", [1])] != [1] \
                or pads != [k // 2, k // 2] or k % 2 == 0 \
                or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        squeeze = producer.get(conv.input[0])
        if squeeze is None or squeeze.op_type != "Reshape" \
                or _single_reader(readers, squeeze.output[0], "Conv", outputs) is None:
            continue
        pool = producer.get(squeeze.input[0])
        if pool is None or pool.op_type not in ("ReduceMean", "GlobalAveragePool") \
                or _single_reader(readers, pool.output[0], "Reshape", outputs) is None:
            continue
        x = inferred.get(pool.input[0])
        if x is None or x.dims is None or len(x.dims) != 4 or x.dims[1] is None:
            continue
        channels = x.dims[1]
        squeezed = inferred.get(squeeze.output[0])
        if squeezed is None or squeezed.dims is None or tuple(squeezed.dims[1:]) != (1, channels):
            continue
        if pool.op_type == "ReduceMean":
            axes = attrs(pool).get("axes")
            if axes is None and len(pool.input) > 1 and pool.input[1] in consts:
                axes = consts[pool.input[1]].reshape(-1).tolist()
            if axes is None or sorted(int(v) % 4 for v in axes) != [2, 3]:
                continue
        sigmoid = _single_reader(readers, conv.output[0], "Sigmoid", outputs)
        if sigmoid is None:
            continue
        expand = _single_reader(readers, sigmoid.output[0], "Reshape", outputs)
        if expand is None:
            continue
        gate = inferred.get(expand.output[0])
        if gate is None or gate.dims is None or tuple(gate.dims[1:]) != (channels, 1, 1):
            continue
        # The rewrite: pool keeping dims, the N x 1 x 1 x C layout, the 1 x k convolution.
        if pool.op_type == "ReduceMean":
            set_attr(pool, "keepdims", 1)
        for reshape, target in ((squeeze, [0, 1, 1, -1]), (expand, [0, -1, 1, 1])):
            name = g.fresh(f"{reshape.output[0]}_shape", taken)
            g.set_initializer(graph, name, np.array(target, np.int64))
            reshape.input[1] = name
            set_attr(reshape, "allowzero", 0)
        name = g.fresh(f"{conv.input[1]}_2d", taken)
        g.set_initializer(graph, name, weight.reshape(1, 1, 1, k))
        conv.input[1] = name
        set_attr(conv, "kernel_shape", [1, k])
        set_attr(conv, "pads", [0, k // 2, 0, k // 2])
        set_attr(conv, "strides", [1, 1])
        set_attr(conv, "dilations", [1, 1])
