"""The Keras 3 export fixtures (tests/fixtures/keras/), refilled with deterministic weights.

The committed files keep the exporter's graph exactly and drop the data of the float
initializers over 64 elements (metadata netgen_stripped=1). `load` puts plausible values
back, seeded by each tensor's name so every run gets the same model: convolution weights
~N(0, sqrt(2 / fan_in)), the fc weight ~N(0, sqrt(1 / fan_in)), the constants a Mul reads
(BatchNorm's gamma / sqrt(var + eps)) ~U(0.5, 1.5), those a Sub or Add reads (mean, beta,
conv and fc biases) ~N(0, 0.1). Roles are read off the consumers, through Identity nodes.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras"
# keras.applications name (+ "-tf": the TensorFlow backend's tf2onnx export) -> fixture
FILES = {"ResNet50": "resnet50_torch.onnx", "ResNet50V2": "resnet50v2_torch.onnx",
         "ResNet50-tf": "resnet50_tf.onnx", "ResNet50V2-tf": "resnet50v2_tf.onnx"}
SIZE = 64


def _roles(graph: onnx.GraphProto) -> dict[str, str]:
    """Initializer -> the op type (and input position) of a node that reads it."""
    source = {t.name: t.name for t in graph.initializer}
    roles: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in source:
            source[node.output[0]] = source[node.input[0]]
            continue
        for position, name in enumerate(node.input):
            if name in source:
                roles.setdefault(source[name], f"{node.op_type}:{position}")
    return roles


def refill(model: onnx.ModelProto) -> onnx.ModelProto:
    roles = _roles(model.graph)
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT or tensor.raw_data or tensor.float_data:
            continue
        dims = tuple(int(d) for d in tensor.dims)
        rng = np.random.default_rng(zlib.crc32(tensor.name.encode()))
        role = roles.get(tensor.name, "")
        if role == "Conv:1":
            value = rng.standard_normal(dims) * np.sqrt(2.0 / np.prod(dims[1:]))
        elif role == "MatMul:1":
            value = rng.standard_normal(dims) * np.sqrt(1.0 / dims[0])
        elif role.startswith("Mul"):
            value = rng.uniform(0.5, 1.5, dims)
        else:
            value = rng.standard_normal(dims) * 0.1
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor.name))
    kept = [p for p in model.metadata_props if p.key != "netgen_stripped"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return model


def load(name: str) -> onnx.ModelProto:
    """The fixture of keras.applications.NAME with its weights filled in."""
    return refill(onnx.load(str(FIXTURES / FILES[name])))


def save(name: str, path: Path) -> Path:
    onnx.save(load(name), str(path))
    return path
