"""Constants and no-op casts: the exporters' bookkeeping that carries no computation.

Keras 3's torch-backend export computes each ZeroPadding2D's pads at run time from
Constant, ConstantOfShape, Concat, Reshape, Slice, Transpose and Cast nodes, reads shared
initializers through Identity nodes and wraps nearly every op in a float-to-float Cast.
The later passes and the importer need constants as initializers and activations without
the casts, so this pass folds every node whose inputs are all constants (with ONNX's
reference implementation, so each op means what the standard says), turns Constant nodes
into initializers, and removes Identity nodes on constants and Casts to the type their
input already has.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from netgen.onnx.normalize.rewrite import array, attrs, replace_nodes

# Ops folded when every input is a constant: shape arithmetic, never an op with state or
# randomness. The reference implementation evaluates them.
FOLDABLE = frozenset({
    "Add", "Sub", "Mul", "Div", "Neg", "Sqrt", "Reciprocal", "Pow", "Cast", "Concat", "Reshape",
    "Slice", "Transpose", "Squeeze", "Unsqueeze", "ConstantOfShape", "Gather", "Flatten",
    "Range", "Expand", "Tile", "Shape", "Identity",
})
# Ops whose output has the element type of their first input (for the no-op Cast test).
_TYPE_OF_FIRST_INPUT = frozenset({
    "Identity", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Add", "Sub", "Mul",
    "Div", "Pad", "Transpose", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "ReduceMean", "MatMul", "Gemm", "Softmax",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Max", "Min", "Sum", "Dropout",
    "Slice",
})


def _evaluate(node: onnx.NodeProto, values: list[np.ndarray], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    inputs = [onnx.helper.make_tensor_value_info(f"i{k}", onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for k, v in enumerate(values)]
    clone = onnx.NodeProto()
    clone.CopyFrom(node)
    feeds, k = {}, 0
    for position, name in enumerate(node.input):
        if name:
            clone.input[position] = f"i{k}"
            feeds[f"i{k}"] = values[k]
            k += 1
    outputs = [onnx.helper.make_tensor_value_info(f"o{k}", TensorProto.UNDEFINED, None)
               for k in range(len(node.output))]
    for k in range(len(node.output)):
        clone.output[k] = f"o{k}"
    model = onnx.helper.make_model(
        onnx.helper.make_graph([clone], "fold", inputs, outputs),
        opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feeds)]
    except Exception:  # an op the reference cannot run: left for the importer to report
        return None


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    const: dict[str, np.ndarray] = {}
    for tensor in graph.initializer:
        value = array(tensor)
        if value is not None:
            const[tensor.name] = value
    types: dict[str, int] = {t.name: t.data_type for t in graph.initializer}
    types.update({v.name: v.type.tensor_type.elem_type for v in graph.input})
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    new_initializers: list[onnx.TensorProto] = []
    kept: list[onnx.NodeProto] = []
    changed = False
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        keep_output = any(o in outputs for o in node.output)
        if node.domain in ("", "ai.onnx") and not keep_output:
            if node.op_type == "Constant" and len(node.output) == 1:
                value = _constant_value(node)
                if value is not None:
                    const[node.output[0]] = value
                    new_initializers.append(numpy_helper.from_array(value, node.output[0]))
                    types[node.output[0]] = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
                    changed = True
                    continue
            live = [name for name in node.input if name]
            if node.op_type == "Identity" and live and live[0] in const:
                alias[node.output[0]] = live[0]
                changed = True
                continue
            if (node.op_type == "Cast" and live and live[0] not in const
                    and types.get(live[0]) == attrs(node).get("to")):
                alias[node.output[0]] = live[0]
                changed = True
                continue
            if node.op_type in FOLDABLE and all(name in const for name in live) and len(node.output) == 1:
                values = _evaluate(node, [const[name] for name in live], opset)
                if values is not None:
                    const[node.output[0]] = values[0]
                    new_initializers.append(numpy_helper.from_array(values[0], node.output[0]))
                    types[node.output[0]] = onnx.helper.np_dtype_to_tensor_dtype(values[0].dtype)
                    changed = True
                    continue
        _note_types(node, types)
        kept.append(node)
    if not changed:
        return model
    replace_nodes(graph, kept)
    graph.initializer.extend(new_initializers)
    _drop_unused(graph)
    return model


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    if len(node.attribute) != 1:
        return None
    a = node.attribute[0]
    if a.name == "value":
        return array(a.t)
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    if a.name in kinds:
        return np.asarray(onnx.helper.get_attribute_value(a), kinds[a.name])
    return None


def _note_types(node: onnx.NodeProto, types: dict[str, int]) -> None:
    if not node.output:
        return
    if node.op_type == "Cast":
        types[node.output[0]] = int(attrs(node).get("to", 0))
    elif node.op_type in _TYPE_OF_FIRST_INPUT and node.input and node.input[0] in types:
        types[node.output[0]] = types[node.input[0]]


def _drop_unused(graph: onnx.GraphProto) -> None:
    from netgen.onnx.normalize.rewrite import drop_unused_initializers

    drop_unused_initializers(graph)
