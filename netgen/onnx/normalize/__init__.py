"""ONNX -> ONNX normalisation before the importer's op mapping.

Exporters spell one network many ways; these passes rewrite a model into the spelling the
importer maps onto Caffe, each exactly (the rewritten graph computes what the file does)
and each in one walk over the nodes. The order matters:

1. constants and casts (`constants`): fold constant subgraphs into initializers, drop
   Identity on constants and no-op Casts, so that later passes see plain initializers and
   activations next to each other;
2. layout (`layout`): push Transposes out of channels-last graphs (needs 1: the pads and
   constants it permutes must be initializers, and casts between a Transpose and its
   inverse must be gone);
3. affine fusion (`affine`): conv biases and Sub/Mul/Add BatchNorms (needs 2: their
   constants are per-channel only once channels-first);
4. pad folding (`pads`): zero Pads into the Conv/MaxPool after them (needs 2, since pads
   are permuted there, and 3, which leaves a Pad's producer, e.g. the ReLU, next to it).
"""

from __future__ import annotations

from typing import Callable

import onnx

from netgen.onnx.normalize.affine import fuse_affine
from netgen.onnx.normalize.constants import fold_constants
from netgen.onnx.normalize.layout import to_channels_first
from netgen.onnx.normalize.pads import fold_pads

Pass = Callable[[onnx.ModelProto], onnx.ModelProto]

PASSES: tuple[Pass, ...] = (fold_constants, to_channels_first, fuse_affine, fold_pads)


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model after every pass, rewritten in place (callers hand over a copy)."""
    for step in PASSES:
        model = step(model)
    return model
