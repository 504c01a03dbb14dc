"""Element types and shapes of every tensor, with the batch dimension fixed to a value.

onnx's own shape inference does the work. It runs on a light copy of the model, large
initializers replaced by typed graph inputs of their shape, so a ResNet-152's weights are
not serialised for it; small ones (reshape targets, slice bounds) stay, so that shapes
computed from them are known (`data_prop` follows them through Shape, Gather, Concat ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

# Initializers with more elements than this are given to shape inference as typed inputs.
SMALL_INITIALIZER = 4096


@dataclass(frozen=True)
class TensorType:
    elem_type: int  # onnx.TensorProto.DataType; 0 where unknown
    dims: tuple[int | None, ...] | None  # None: unknown rank; a None dim: unknown size

    @property
    def known(self) -> bool:
        return self.dims is not None and all(d is not None for d in self.dims)


def batch_symbolic(model: onnx.ModelProto) -> bool:
    """Whether some graph input has a symbolic (or unset) first dimension."""
    for value in _real_inputs(model.graph):
        dims = value.type.tensor_type.shape.dim
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            return True
    return False


def _real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    constants = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in constants]


def infer(model: onnx.ModelProto, batch: int | None) -> dict[str, TensorType]:
    """Every tensor's type, the graph inputs' symbolic first dimension set to `batch`
    (None: left as the file has it)."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    constants = set()
    for tensor in model.graph.initializer:
        constants.add(tensor.name)
        count = 1
        for d in tensor.dims:
            count *= d
        if count <= SMALL_INITIALIZER:
            graph.initializer.append(tensor)
        else:
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type,
                                                             list(tensor.dims)))
    for value in model.graph.input:
        if value.name in constants:
            continue
        copy = graph.input.add()
        copy.CopyFrom(value)
        dims = copy.type.tensor_type.shape.dim
        if batch is not None and dims and not (dims[0].HasField("dim_value")
                                               and dims[0].dim_value > 0):
            dims[0].Clear()
            dims[0].dim_value = batch
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False,
                                                     data_prop=True)
    except Exception:  # an inconsistent graph: the op mapping reports its own errors
        inferred = light
    types: dict[str, TensorType] = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        types[value.name] = _tensor_type(value)
    for tensor in model.graph.initializer:
        types[tensor.name] = TensorType(tensor.data_type, tuple(int(d) for d in tensor.dims))
    return types


def _tensor_type(value: onnx.ValueInfoProto) -> TensorType:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return TensorType(tensor_type.elem_type, None)
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else None
                 for d in tensor_type.shape.dim)
    return TensorType(tensor_type.elem_type, dims)
