"""The MXNet Gluon model-zoo exports (tests/fixtures/mxnet/), refilled with deterministic weights.

Written by mx.onnx.export_model (MXNet 1.9.1; see tests/fixtures/mxnet/README.md) and committed
stripped like the torch exports: the float initializers over 64 elements lost their data
(metadata netgen_stripped=1). `load` refills them with real_exports.refill's rules (every
BatchNorm is a BatchNormalization node, so its roles are read off the node), seeded by tensor
name. The exporter also lists every initializer as a graph input, as ONNX before IR 4 required.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from real_exports import STRIPPED_KEY, is_stripped, refill

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mxnet"
NAMES = ("resnet18_v1", "resnet50_v1", "resnet18_v2")
SIZE = 64


def path(name: str) -> Path:
    p = FIXTURES / f"{name}.onnx"
    if not p.is_file():
        raise FileNotFoundError(f"no MXNet export {name!r} in {FIXTURES}")
    return p


def load(name: str) -> onnx.ModelProto:
    """The export of vision.get_model(NAME) with its stripped tensors filled in."""
    model = onnx.load(str(path(name)))
    if is_stripped(model):
        refill(model)
        kept = [p for p in model.metadata_props if p.key != STRIPPED_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
    return model


def save(name: str, target: Path) -> Path:
    onnx.save(load(name), str(target))
    return target
