"""The Keras 3 export fixtures (tests/fixtures/keras/), refilled with deterministic weights.

The committed files keep the exporter's graph exactly and drop the data of the float
initializers over 64 elements (metadata netgen_stripped=1). `load` puts plausible values
back, seeded by each tensor's name so every run gets the same model: convolution weights
~N(0, sqrt(2 / fan_in)), the fc weight ~N(0, sqrt(1 / fan_in)), the constants a Mul reads
(BatchNorm's gamma / sqrt(var + eps)) ~U(0.5, 1.5), those a Sub or Add reads (mean, beta,
conv and fc biases) ~N(0, 0.1). Roles are read off the consumers, through Identity nodes.

`keras_resnet(depth)` builds ResNet50/101/152 in the same node pattern with onnx.helper, for
the benchmark (a 240 MB ResNet-152 file is not committed, and the bench must not need keras).
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
         "ResNet50-tf": "resnet50_tf.onnx", "ResNet50V2-tf": "resnet50v2_tf.onnx",
         # ResNet50(include_top=False) + Flatten() + Dense(10): logits, no softmax
         "ResNet50-flatten": "resnet50flat_torch.onnx",
         "ResNet50-flatten-tf": "resnet50flat_tf.onnx"}
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


# --------------------------------------------------------------------------- built with onnx.helper

_STAGES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class _KerasGraph:
    """keras.applications.ResNet50/101/152 in the node pattern of the torch backend's export
    (the fixtures' ResNet50, node for node but for the Identity nodes on shared constants):
    a float Cast around nearly every op, Transposes around each Conv and the MaxPool, the
    conv bias as an Add, BatchNorm as Sub/Mul/Add of (1, 1, 1, C) constants, ZeroPadding2D as
    a Pad whose amounts Constant/ConstantOfShape/Concat/Reshape/Slice/Transpose compute."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count: dict[str, int] = {}

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        k = self.count.get(op, 0)
        self.count[op] = k + 1
        name = f"/{op}" + (f"_{k}" if k else "")
        self.nodes.append(onnx.helper.make_node(op, inputs, [f"{name}_output_0"], name=name, **attrs))
        return f"{name}_output_0"

    def init(self, value: np.ndarray) -> str:
        name = f"onnx::Const_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def constant(self, value: np.ndarray) -> str:
        return self.node("Constant", [], value=numpy_helper.from_array(value))

    def cast(self, x: str) -> str:
        return self.node("Cast", [x], to=onnx.TensorProto.FLOAT)

    def pad(self, x: str, amount: int) -> str:
        zeros = self.node("ConstantOfShape", [self.constant(np.array([2], np.int64))],
                          value=numpy_helper.from_array(np.array([0], np.int64)))
        flat = self.node("Concat", [self.constant(np.array([0, 0] + [amount] * 4, np.int64)), zeros],
                         axis=0)
        pairs = self.node("Reshape", [flat, self.constant(np.array([-1, 2], np.int64))], allowzero=0)
        ends = np.array([-9223372036854775807], np.int64)
        reverse = self.node("Slice", [pairs, self.constant(np.array([-1], np.int64)),
                                      self.constant(ends), self.constant(np.array([0], np.int64)),
                                      self.constant(np.array([-1], np.int64))])
        pads = self.node("Reshape", [self.node("Transpose", [reverse], perm=[1, 0]),
                                     self.constant(np.array([-1], np.int64))], allowzero=0)
        return self.node("Pad", [x, self.node("Cast", [pads], to=onnx.TensorProto.INT64), ""],
                         mode="constant")

    def conv_bn(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, pad: int = 0) -> str:
        weight = self.rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / (c_in * k * k))
        conv = self.node("Conv", [self.node("Transpose", [x], perm=[0, 3, 1, 2]),
                                  self.init(weight.astype(np.float32))],
                         dilations=[1, 1], group=1, kernel_shape=[k, k], pads=[pad] * 4,
                         strides=[stride, stride])
        y = self.cast(self.node("Transpose", [conv], perm=[0, 2, 3, 1]))

        def channel(value):
            return self.init(value.reshape(1, 1, 1, c_out).astype(np.float32))

        y = self.cast(self.node("Add", [y, channel(self.rng.standard_normal(c_out) * 0.1)]))
        y = self.node("Sub", [y, channel(self.rng.standard_normal(c_out) * 0.1)])
        y = self.node("Mul", [y, channel(self.rng.uniform(0.5, 1.5, c_out))])
        return self.node("Add", [y, channel(self.rng.standard_normal(c_out) * 0.1)])

    def relu(self, x: str) -> str:
        return self.cast(self.node("Relu", [self.cast(self.cast(x))]))

    def block(self, x: str, c_in: int, width: int, stride: int, project: bool) -> str:
        y = self.relu(self.conv_bn(x, c_in, width, 1, stride))
        y = self.relu(self.conv_bn(y, width, width, 3, 1, 1))
        y = self.conv_bn(y, width, 4 * width, 1)
        shortcut = self.conv_bn(self.cast(x), c_in, 4 * width, 1, stride) if project else x
        return self.relu(self.node("Add", [self.cast(shortcut), self.cast(y)]))

    def model(self, depth: int, size: int, classes: int) -> onnx.ModelProto:
        x = self.cast(self.cast(self.cast("keras_tensor")))
        x = self.relu(self.conv_bn(self.cast(self.pad(x, 3)), 3, 64, 7, 2))
        x = self.node("MaxPool", [self.node("Transpose", [self.cast(self.pad(x, 1))], perm=[0, 3, 1, 2])],
                      ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3], pads=[0, 0, 0, 0],
                      strides=[2, 2])
        x = self.cast(self.node("Transpose", [self.cast(x)], perm=[0, 2, 3, 1]))
        c_in = 64
        for stage, blocks in enumerate(_STAGES[depth]):
            width = 64 << stage
            for b in range(blocks):
                x = self.block(x, c_in, width, 2 if b == 0 and stage else 1, b == 0)
                c_in = 4 * width
        x = self.node("ReduceMean", [x, self.constant(np.array([1, 2], np.int64))],
                      keepdims=0)
        fc = self.rng.standard_normal((c_in, classes)) * np.sqrt(1.0 / c_in)
        x = self.node("MatMul", [self.cast(x), self.init(fc.astype(np.float32))])
        x = self.node("Add", [self.cast(x), self.init((self.rng.standard_normal(classes) * 0.1).astype(np.float32))])
        out = self.node("Softmax", [self.cast(x)], axis=-1)
        graph = onnx.helper.make_graph(
            self.nodes, "main_graph",
            [onnx.helper.make_tensor_value_info("keras_tensor", onnx.TensorProto.FLOAT,
                                                ["batch", size, size, 3])],
            [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, ["batch", classes])],
            self.inits)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)],
                                       producer_name="pytorch", producer_version="2.13.0")
        model.ir_version = 9
        return model


def keras_resnet(depth: int = 50, size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """keras.applications.ResNet{depth} as its torch-backend export, built without keras."""
    return _KerasGraph(seed).model(depth, size, classes)
