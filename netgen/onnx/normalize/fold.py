"""Fold every computation that depends only on constants and on tensor shapes.

PyTorch's TorchScript exporter computes sizes at run time: `out.view(out.size(0), -1)` is
Shape -> Gather -> Unsqueeze -> Concat -> Reshape, and `F.pad` builds its pads through
ConstantOfShape, Reshape, Slice, Transpose and Cast. Caffe has fixed parameters only, so
each such value must be a constant. With a symbolic batch it may not be: the subgraph is
evaluated twice, with the batch set to 1 and to 2 (shapes from onnx's shape inference,
every other node through onnx's reference evaluator). What agrees is a constant and becomes
an initializer. What differs depends on the batch; that is accepted only as a Reshape's
target shape in the batch's position, written 0 (copy that dimension, which Caffe's
Reshape and ONNX's both do) or the one -1, so the result holds for every batch. Anything
else stops with an error naming the node.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from netgen.errors import NetgenError, first_line
from netgen.onnx.normalize import graph as g
from netgen.onnx.normalize import shapes

# The two batch sizes the shape subgraphs are evaluated at when the batch is symbolic.
BATCHES = (1, 2)
# A folded tensor larger than this many elements is refused (a ConstantOfShape or Expand
# of a computed shape could otherwise ask for any amount of memory).
MAX_FOLD_ELEMENTS = 1 << 24
# Ops whose output is not a function of their inputs, never folded.
_RANDOM = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
           "Multinomial", "Bernoulli"}


def node_name(node: onnx.NodeProto) -> str:
    """As the op mapping names a node in its messages."""
    return node.name or f"{node.op_type}_{node.output[0] if node.output else '?'}"


def _fail(node: onnx.NodeProto, message: str) -> NetgenError:
    return NetgenError(f"node {node_name(node)!r} ({node.op_type}): {message}")


def _short(array: np.ndarray) -> str:
    values = array.reshape(-1).tolist()
    text = str(values[:8])
    return text if len(values) <= 8 else text[:-1] + ", ...]"


def _foldable(node: onnx.NodeProto) -> bool:
    return (node.domain in ("", "ai.onnx") and bool(node.input) and node.op_type not in _RANDOM
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for a in node.attribute))


def _shape_value(node: onnx.NodeProto, dims: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(math.prod(dims), np.int64)
    a = {x.name: x.i for x in node.attribute}
    start, end = a.get("start", 0), a.get("end", len(dims))
    return np.array(dims[start:end], np.int64)  # Python's slice clamps as ONNX's Shape does


def _planned_size(node: onnx.NodeProto, inputs: dict[str, np.ndarray]) -> int | None:
    """The output size of an op that sizes its output from an input's value, before it
    runs; None for the others (their output is checked after)."""
    try:
        if node.op_type == "ConstantOfShape":
            return math.prod(int(d) for d in inputs[node.input[0]].reshape(-1))
        if node.op_type == "Expand":
            shape = tuple(int(d) for d in inputs[node.input[1]].reshape(-1))
            return math.prod(np.broadcast_shapes(inputs[node.input[0]].shape, shape))
        if node.op_type == "Tile":
            repeats = [int(d) for d in inputs[node.input[1]].reshape(-1)]
            return int(inputs[node.input[0]].size) * math.prod(repeats)
        if node.op_type == "Range":
            start, limit, delta = (float(inputs[n].reshape(-1)[0]) for n in node.input[:3])
            return max(math.ceil((limit - start) / delta), 0) if delta else None
    except (ValueError, IndexError, KeyError, TypeError, OverflowError):
        return None  # malformed: the evaluator reports it
    return None


class _Evaluator:
    def __init__(self, model: onnx.ModelProto):
        self.opsets = list(model.opset_import)

    def run(self, node: onnx.NodeProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        # A constant may be as large as what it is computed from (a weight transposed), but
        # an op that makes more elements than it reads is held to MAX_FOLD_ELEMENTS, checked
        # before the ops that size their output from a value are run.
        limit = max(MAX_FOLD_ELEMENTS, sum(int(a.size) for a in inputs.values()))
        count = _planned_size(node, inputs)
        if count is not None and count > limit:
            raise _fail(node, f"would make a constant of {count:,} elements (at most "
                        f"{MAX_FOLD_ELEMENTS:,} are folded)")
        names = list(dict.fromkeys(i for i in node.input if i))
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in names],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
             for o in node.output if o])
        model = helper.make_model(graph, opset_imports=self.opsets)
        try:
            results = ReferenceEvaluator(model).run(None, {n: inputs[n] for n in names})
        except NetgenError:
            raise
        except Exception as exc:
            raise _fail(node, f"cannot evaluate its constant inputs ({type(exc).__name__}: "
                        f"{first_line(exc)})") from None
        arrays = [np.asarray(r) for r in results]
        for array in arrays:
            if array.size > limit:
                raise _fail(node, f"makes a constant of {array.size:,} elements (at most "
                            f"{MAX_FOLD_ELEMENTS:,} are folded)")
        return arrays


def fold_constants(model: onnx.ModelProto) -> None:
    batches = BATCHES if shapes.batch_symbolic(model) else (None,)
    evaluator = _Evaluator(model)
    while _fold_once(model, batches, evaluator):
        pass
    _refuse_left_shapes(model, batches)


def _fold_once(model: onnx.ModelProto, batches: tuple, evaluator: _Evaluator) -> bool:
    graph = model.graph
    if not any(_foldable(node) for node in graph.node):
        return False
    types = [shapes.infer(model, batch) for batch in batches]
    consts = g.Constants(graph)
    values: dict[str, list[np.ndarray]] = {}  # folded tensor -> its value at each batch
    folded: list[onnx.NodeProto] = []
    for node in graph.node:
        if not _foldable(node):
            continue
        inputs = [i for i in node.input if i]
        if all(i in consts for i in inputs):
            shared = evaluator.run(node, {i: consts[i] for i in inputs})
            results = [shared] * len(batches)
        elif all(i in consts or i in values for i in inputs):
            results = []
            for k in range(len(batches)):
                feed = {i: consts[i] if i in consts else values[i][k] for i in inputs}
                results.append(evaluator.run(node, feed))
        elif node.op_type in ("Shape", "Size") and all(
                (t.get(node.input[0]) or shapes.TensorType(0, None)).known for t in types):
            results = [[_shape_value(node, t[node.input[0]].dims)] for t in types]
        else:
            continue
        for k, out in enumerate(node.output):
            if out:
                values[out] = [r[k] for r in results]
        folded.append(node)
    if not folded:
        return False
    _commit(graph, folded, values, types, batches)
    return True


def _same(arrays: list[np.ndarray]) -> bool:
    return all(a.dtype == arrays[0].dtype and a.shape == arrays[0].shape
               and np.array_equal(a, arrays[0]) for a in arrays[1:])


def _commit(graph: onnx.GraphProto, folded: list[onnx.NodeProto],
            values: dict[str, list[np.ndarray]], types: list, batches: tuple) -> None:
    """Folded tensors still read by other nodes become initializers; the folded nodes go."""
    folded_ids = {id(n) for n in folded}
    producer = {out: node for node in folded for out in node.output if out}
    outputs = g.output_names(graph)
    rewritten: list[tuple[onnx.NodeProto, int, np.ndarray]] = []
    for name, per_batch in values.items():
        readers = [n for n in graph.node if id(n) not in folded_ids and name in n.input]
        if name in outputs and not _same(per_batch):
            raise _fail(producer[name], f"the graph output {name!r} depends on the batch size")
        if not readers and name not in outputs:
            continue
        if _same(per_batch):
            g.set_initializer(graph, name, per_batch[0])
            continue
        for reader in readers:
            rewritten.append((reader, list(reader.input).index(name),
                              _batch_target(reader, name, per_batch, types, batches)))
    taken = g.all_names(graph)
    for reader, index, target in rewritten:
        name = g.fresh(f"{reader.input[index]}_batch", taken)
        g.set_initializer(graph, name, target)
        reader.input[index] = name
    g.remove_nodes(graph, folded)


def _batch_target(reader: onnx.NodeProto, name: str, per_batch: list[np.ndarray], types: list,
                  batches: tuple) -> np.ndarray:
    """A batch-dependent value read by `reader`: the constant that replaces it where that is
    a Reshape's target shape with the batch in one position, else an error."""
    allowed = ("only a Reshape's target shape may depend on the batch, in the batch's "
               "position (it becomes 0: copy that dimension)")
    shown = ", ".join(f"{_short(v)} at batch {b}" for v, b in zip(per_batch, batches))
    if reader.op_type != "Reshape" or len(reader.input) < 2 or reader.input[1] != name \
            or reader.input[0] == name:
        raise _fail(reader, f"input {name!r} is computed from tensor shapes and changes with "
                    f"the batch size ({shown}); {allowed}")
    vectors = [v.reshape(-1).astype(np.int64) for v in per_batch]
    if len({v.shape for v in vectors}) != 1:
        raise _fail(reader, f"its target shape {name!r} changes length with the batch size "
                    f"({shown}); {allowed}")
    differ = [i for i in range(len(vectors[0])) if len({int(v[i]) for v in vectors}) > 1]
    if len(differ) != 1 or any(int(v[differ[0]]) != b for v, b in zip(vectors, batches)):
        raise _fail(reader, f"its target shape {name!r} changes with the batch size other than "
                    f"as the batch itself ({shown}); {allowed}")
    position = differ[0]
    target = vectors[0].copy()
    attrs = {a.name: a for a in reader.attribute}
    allowzero = "allowzero" in attrs and attrs["allowzero"].i
    data_dims = [t.get(reader.input[0]) for t in types]
    copies_batch = all(t is not None and t.dims is not None and len(t.dims) > position
                       and t.dims[position] == b for t, b in zip(data_dims, batches))
    others = np.delete(target, position)
    if copies_batch and not (allowzero and 0 in others):
        if allowzero:  # with no other 0 in the shape allowzero changes nothing: drop it
            attrs["allowzero"].i = 0
        target[position] = 0
    elif -1 not in others:
        target[position] = -1
    else:
        raise _fail(reader, f"its target shape {name!r} changes with the batch size ({shown}) "
                    "and neither 0 nor -1 can stand for the batch there")
    return target


def _refuse_left_shapes(model: onnx.ModelProto, batches: tuple) -> None:
    """A Shape or Size still in the graph reads a tensor whose shape is not fixed once the
    batch is: its value is no constant Caffe can hold."""
    left = [n for n in model.graph.node if n.op_type in ("Shape", "Size")
            and n.domain in ("", "ai.onnx")]
    if not left:
        return
    node = left[0]
    found = shapes.infer(model, batches[0]).get(node.input[0]) if node.input else None
    dims = ("of unknown rank" if found is None or found.dims is None else
            "[" + ", ".join("?" if d is None else str(d) for d in found.dims) + "]")
    raise _fail(node, f"the shape of {node.input[0]!r} ({dims}) is not fixed once the batch "
                "is given; only sizes fixed but for the batch become constants Caffe can hold")
