"""Real ONNX exports (written by ``torch.onnx.export`` itself) for the tests, and their loader.

The files live in tests/fixtures/exports/ (made by tests/fixtures/make_exports.py in a scratch
torch environment; the tests need only onnx and numpy). All but the CIFAR ResNet-20 files are
committed "stripped": every float tensor with more than 64 elements lost its data to keep the
repository small (name, dims and data_type kept; metadata ``netgen_stripped=1``). ``load``
refills them with deterministic values of a plausible scale, so the graphs run and the numbers
of a conversion can be compared with ONNX Runtime on the same refilled model.

Refill rules (seed of each tensor: ``zlib.crc32`` of its name, so a tensor's values do not depend
on which other tensors a file holds):

- inputs 1-4 of a BatchNormalization node: scale ~ U(0.5, 1.5), bias ~ N(0, 0.1),
  mean ~ N(0, 0.1), var ~ U(0.5, 1.5);
- 4-D (conv weights): N(0, sqrt(2 / fan_in)), fan_in = dims[1] * dims[2] * dims[3];
- 2-D (Gemm/MatMul weights): N(0, sqrt(1 / fan_in)), fan_in = dims[1] for a Gemm B input with
  transB=1, dims[0] otherwise;
- 1-D (biases): N(0, 0.1);
- anything else: N(0, 0.1).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

EXPORTS = Path(__file__).resolve().parent / "fixtures" / "exports"
STRIPPED_KEY = "netgen_stripped"
BN_ROLES = {1: "scale", 2: "bias", 3: "mean", 4: "var"}


def path(file: str) -> Path:
    """The path of one export named in the manifest (e.g. ``cifar_resnet20.torchscript.onnx``)."""
    p = EXPORTS / file
    if not p.is_file():
        raise FileNotFoundError(f"no export {file!r} in {EXPORTS}")
    return p


def manifest() -> list[dict[str, Any]]:
    """One record per committed file: model, source, exporter, opset, versions, input_shape,
    input_name, stripped, parameters (as torch counts them), bn_features, op_counts."""
    return json.loads((EXPORTS / "manifest.json").read_text())["files"]


def record(file: str) -> dict[str, Any]:
    for r in manifest():
        if r["file"] == file:
            return r
    raise KeyError(f"{file!r} is not in the manifest")


def is_stripped(model: onnx.ModelProto) -> bool:
    return any(p.key == STRIPPED_KEY and p.value == "1" for p in model.metadata_props)


def load(file: str) -> onnx.ModelProto:
    """The export with stripped tensors refilled deterministically (see the module docstring)."""
    model = onnx.load(str(path(file)))
    if is_stripped(model):
        refill(model)
    return model


def _has_data(t: TensorProto) -> bool:
    return bool(t.raw_data) or len(t.float_data) > 0 or t.data_location == TensorProto.EXTERNAL


def _numel(t: TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= int(d)
    return n


def _roles(graph: onnx.GraphProto) -> tuple[dict[str, str], dict[str, int]]:
    """BatchNormalization role of each tensor name, and the fan-in axis of Gemm B inputs."""
    roles: dict[str, str] = {}
    gemm_b_axis: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "BatchNormalization":
            for i, name in enumerate(node.input):
                if i in BN_ROLES and name:
                    roles[name] = BN_ROLES[i]
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            gemm_b_axis[node.input[1]] = 1 if trans_b else 0
    return roles, gemm_b_axis


def _values(name: str, dims: list[int], role: str | None, gemm_b_axis: int | None) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    shape = tuple(dims)
    f32 = np.float32
    if role in ("scale", "var"):
        return np.asarray(rng.random(shape, dtype=f32) + f32(0.5), dtype=f32)
    if role in ("bias", "mean") or len(shape) not in (2, 4):
        std = 0.1
    elif len(shape) == 4:
        std = np.sqrt(2.0 / max(shape[1] * shape[2] * shape[3], 1))
    else:
        std = np.sqrt(1.0 / max(shape[gemm_b_axis if gemm_b_axis is not None else 0], 1))
    return np.asarray(rng.standard_normal(shape, dtype=f32) * f32(std), dtype=f32)


def refill(model: onnx.ModelProto) -> int:
    """Fill every float tensor without data in place; returns how many were filled."""
    roles, gemm_b = _roles(model.graph)
    filled = 0

    def fill(t: TensorProto, role: str | None, b_axis: int | None) -> None:
        nonlocal filled
        if t.data_type != TensorProto.FLOAT or _has_data(t) or _numel(t) == 0:
            return
        arr = _values(t.name, list(t.dims), role, b_axis)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
        filled += 1

    for t in model.graph.initializer:
        fill(t, roles.get(t.name), gemm_b.get(t.name))
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        out = node.output[0]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                if not a.t.name:
                    a.t.name = out  # seed from the Constant's output name
                fill(a.t, roles.get(out), gemm_b.get(out))
    return filled


def float_parameter_count(model: onnx.ModelProto) -> int:
    """Float parameters the graph holds, counted as torch counts ``model.parameters()``.

    Counts each float initializer of rank >= 1 once per node that reads it, directly or through
    an Identity (the exporters tie equal tensors into one: TorchScript hands each user an
    Identity of it, the dynamo exporter lets the users share it, as it does the ones and
    zeros of untrained GroupNorms), and leaves out the BatchNormalization running
    mean and variance (buffers, not parameters), the ones and zeros an exported GroupNorm
    gives its InstanceNormalization, and rank-0 scalars (the exporters'
    constants, such as Pad's value).
    """
    sizes = {t.name: _numel(t) for t in model.graph.initializer
             if t.data_type == TensorProto.FLOAT and len(t.dims) >= 1}
    alias = {}
    for node in model.graph.node:
        if node.op_type == "Identity":
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
    # BatchNormalization's running mean and variance; the scale and bias (ones, zeros) a
    # GroupNorm's export gives its InstanceNormalization (the learned affine is the Mul/Add)
    skip = {"BatchNormalization": (3, 4), "InstanceNormalization": (1, 2)}
    return sum(sizes[name] for node in model.graph.node if node.op_type != "Identity"
               for name in {alias.get(n, n) for i, n in enumerate(node.input)
                            if i not in skip.get(node.op_type, ())}
               if name in sizes)


def bn_channels_in_graph(model: onnx.ModelProto) -> int:
    """Channels of the BatchNormalization nodes left in the graph (not folded away)."""
    sizes = {t.name: _numel(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in sizes:
            sizes[node.output[0]] = sizes[node.input[0]]
    return sum(sizes[n.input[1]] for n in model.graph.node if n.op_type == "BatchNormalization")
