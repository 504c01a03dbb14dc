"""ONNX -> ONNX normalisation, run before the op mapping (netgen.onnx.reader).

Exporters spell one computation many ways: a constant as an initializer or a Constant node,
`x.view(x.size(0), -1)` as a Reshape of a constant or of a shape computed at run time, a
stride-2 subsample of H and W as one Slice or two. The passes here rewrite a model into one
spelling, so that the op mapping handles each computation once.

The pass interface, for anyone adding a pass (e.g. a channels-last rewrite for Keras):

- a pass is a function `def name(model: onnx.ModelProto) -> None` that edits `model` in
  place (nodes, initializers, attributes) and returns nothing; it must keep the graph's
  input and output names and what the graph computes;
- it may raise netgen.errors.NetgenError with one line naming the node, what it found and
  what is allowed, where the model cannot be brought into a form Caffe can express;
- it goes into PASSES at the place its inputs are ready: after `constants_to_initializers`
  every constant is an initializer; after `fold_constants` no Shape-dependent subgraph is
  left; `prune_unused` runs last;
- helpers for editing a graph by names are in normalize.graph, tensor types and shapes
  (with the batch fixed to a value) in normalize.shapes.

After the generic passes come the channels-last ones (Keras 3's exports, issue 18), in this
order because each needs the previous one's result:

- `to_channels_first` (layout.py) needs every constant folded and the no-op Casts between a
  Transpose and its inverse gone (the pads and per-channel constants it permutes must be
  initializers); it pushes the Transposes out and records a channels-last input in the
  model's metadata (`netgen_input_layout=NHWC`);
- `fuse_affine` (affine.py) needs channels-first constants ((1, C, 1, 1) is per-channel
  only after the layout pass): conv bias Adds and Sub/Mul/Add BatchNorms;
- `fold_pads` (pads.py) needs the Pads channels-first and, for a MaxPool, its ReLU next to
  it (after the affine fusion no Add sits between); zero Pads become the layer's padding;
- `prune_unused` still runs last (the constants the three replaced).

`normalize` works on a copy: the caller's model is untouched.

Why not an existing simplifier: onnxslim (pure Python) folds these graphs too (measured on
a TorchScript ResNet-110 with option A: 3.0 s against 0.7 s here), but it also applies
fusions and renames of its own, so an error of the op mapping would name nodes the user's
file does not have, and a shape computation that depends on the batch stays in the graph
without a word where netgen must refuse it or rewrite it to 0. onnx-simplifier is a compiled
extension that runs the model through ONNX Runtime. What is used of onnx is its shape
inference and its reference evaluator, one node at a time.
"""

from __future__ import annotations

from typing import Callable

import onnx

from netgen.errors import NetgenError, first_line
from netgen.onnx.normalize.affine import fuse_affine
from netgen.onnx.normalize.constants import constants_to_initializers
from netgen.onnx.normalize.eca import drop_broadcast_expands, eca_to_2d
from netgen.onnx.normalize.fold import fold_constants
from netgen.onnx.normalize.groupnorm import instance_norm_to_ops
from netgen.onnx.normalize.layout import to_channels_first
from netgen.onnx.normalize.noops import drop_noops
from netgen.onnx.normalize.pads import fold_pads
from netgen.onnx.normalize.prune import prune_unused
from netgen.onnx.normalize.sk import sk_to_4d
from netgen.onnx.normalize.slices import merge_slices
from netgen.onnx.normalize.split_attention import split_attention_to_4d

Pass = Callable[[onnx.ModelProto], None]

PASSES: tuple[Pass, ...] = (
    constants_to_initializers,  # Constant nodes and Identity of constants -> initializers
    drop_noops,                 # Identity, Cast to the type the tensor already has
    drop_broadcast_expands,     # Expand to the shape of what a Mul/Add broadcasts it with
    fold_constants,             # constant and shape subgraphs -> initializers (batch -> 0)
    eca_to_2d,                  # timm's ECA conv1d across channels -> a 1 x k Conv
    sk_to_4d,                   # timm's selective-kernel 5-D stack -> 4-D sums and gates
    #                             (after folding: its view's target and sums' axes constant)
    # Before the layout pass, which would read the radix softmax's Transpose as channels-last:
    split_attention_to_4d,      # timm's split attention (ResNeSt) 5-D -> Split, Softmax, Sum
    instance_norm_to_ops,       # GroupNorm/InstanceNorm -> mean, variance, Pow(v + eps, -0.5)
    merge_slices,               # Slice of a Slice on other axes -> one Slice
    to_channels_first,          # channels-last (Keras) -> NCHW, Transposes pushed out
    fuse_affine,                # Conv + Add -> conv bias; Sub/Mul/Add -> BatchNormalization
    fold_pads,                  # zero Pad of H, W -> the Conv's / MaxPool's pads
    prune_unused,               # nodes and initializers nothing reads
)


def normalize(model: onnx.ModelProto, passes: tuple[Pass, ...] = PASSES) -> onnx.ModelProto:
    """A normalised copy of `model`."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for step in passes:
        try:
            step(copy)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            # A node missing an input, output or attribute, or one of the wrong type: a
            # malformed file, reported as such instead of a traceback.
            raise NetgenError(f"malformed ONNX graph (normalisation pass {step.__name__}: "
                              f"{type(exc).__name__}: {first_line(exc)})") from None
    return copy
