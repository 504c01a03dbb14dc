"""A selective-kernel unit's softmax over two paths, in the form MNN computes right.

The IR's form (netgen.onnx.normalize.sk): the N x 2C x 1 x 1 attention viewed as
N x 2 x C x 1 (Reshape), Softmax over axis 1, a Slice into the two N x 1 x C x 1 weights,
each viewed as N x C x 1 x 1 (Reshape), the gate of one path. MNN 3.6's Softmax does not
subtract the largest input before exponentiating and clamps the exponent near -87: where
both logits of a channel are below that (a refilled skresnet18's: -86.2 and -107.5) it gives
0.70 / 0.30 instead of 1 / 5e-10 (measured with the wheel against OpenCV, blob by blob).
For two paths the softmax is exactly a sigmoid of the difference,
softmax(z0, z1)_0 = 1 / (1 + exp(z1 - z0)) = sigmoid(z0 - z1), and MNN's Sigmoid saturates
right. So the mnn form is: Slice of the attention at C along axis 1 into z0 and z1,
Eltwise SUM of (z0, z1) with coefficients (1, -1) and Sigmoid for the first gate, of (z1, z0)
with (1, -1) and Sigmoid for the second, writing the gates' blobs (MNN's converter merges two
Eltwise layers of the same bottoms whatever their coefficients: (-1, 1) on (z0, z1) lost
the second gate and everything after it). Stock Caffe layers; BVLC Caffe and OpenCV compute it
alike. `from_sigmoids` folds it back, so a file has one IR whichever form it is written in.
"""

from __future__ import annotations

from dataclasses import replace

from netgen.arch import ir


def _uses(layers: list[ir.Layer]) -> dict[str, int]:
    uses: dict[str, int] = {}
    for layer in layers:
        for bottom in layer.bottoms:
            uses[bottom] = uses.get(bottom, 0) + 1
    return uses


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _softmax_unit(layers: list[ir.Layer], i: int, uses: dict[str, int]) -> list[ir.Layer] | None:
    """The five layers (view, Softmax, Slice, two gate views) of a two-path softmax starting
    at layers[i], each read only by the next (the Slice by both views), or None."""
    if i + 4 >= len(layers):
        return None
    view, softmax, split, *gates = layers[i:i + 5]
    if view.type != "Reshape" or softmax.type != "Softmax" or split.type != "Slice" \
            or any(g.type != "Reshape" for g in gates):
        return None
    shape = view.top_shapes[0] if view.top_shapes else ()
    if len(shape) != 4 or shape[1] != 2 or shape[3] != 1:
        return None
    n, _, c, _ = shape
    return [view, softmax, split, *gates] if (
        softmax.bottoms == view.tops and softmax.param.axis == 1
        and split.bottoms == softmax.tops and split.param.axis == 1 and len(split.tops) == 2
        and tuple(g.bottoms[0] for g in gates) == split.tops
        and all(g.top_shapes and g.top_shapes[0] == (n, c, 1, 1) for g in gates)
        and uses.get(view.tops[0]) == 1 and uses.get(softmax.tops[0]) == 1
        and all(uses.get(t) == 1 for t in split.tops)) else None


def to_sigmoids(layers: list[ir.Layer], taken: set[str]) -> list[ir.Layer]:
    """`layers` (shapes inferred) with each two-path softmax in the sigmoid form."""
    uses = _uses(layers)
    out: list[ir.Layer] = []
    i = 0
    while i < len(layers):
        unit = _softmax_unit(layers, i, uses)
        if unit is None:
            out.append(layers[i])
            i += 1
            continue
        view, _, split, *gates = unit
        channels = view.top_shapes[0][2]
        logits = (_fresh(f"{split.name}_z0", taken), _fresh(f"{split.name}_z1", taken))
        out.append(ir.Layer(split.name, "Slice", view.bottoms, logits,
                            ir.SliceParam(axis=1, slice_point=(channels,)), stage=split.stage))
        for gate, pair in zip(gates, (logits, logits[::-1])):
            diff = _fresh(f"{gate.name}_diff", taken)
            out.append(ir.Layer(diff, "Eltwise", pair, (diff,),
                                ir.EltwiseParam("SUM", (1.0, -1.0)), stage=gate.stage))
            out.append(ir.Layer(gate.name, "Sigmoid", (diff,), gate.tops, stage=gate.stage))
        i += len(unit)
    return out


def _sigmoid_unit(layers: list[ir.Layer], i: int, uses: dict[str, int]) -> list[ir.Layer] | None:
    """The five layers of the sigmoid form starting at layers[i], or None."""
    if i + 4 >= len(layers):
        return None
    split, d0, s0, d1, s1 = layers[i:i + 5]
    shape = split.top_shapes[0] if split.top_shapes else ()
    if split.type != "Slice" or split.param.axis != 1 or len(split.tops) != 2 \
            or len(shape) != 4 or shape[2:] != (1, 1) or split.top_shapes[1] != shape:
        return None
    for diff, sigmoid, pair in ((d0, s0, split.tops), (d1, s1, split.tops[::-1])):
        if diff.type != "Eltwise" or diff.param != ir.EltwiseParam("SUM", (1.0, -1.0)) \
                or diff.bottoms != pair or sigmoid.type != "Sigmoid" \
                or sigmoid.bottoms != diff.tops or sigmoid.tops == sigmoid.bottoms \
                or uses.get(diff.tops[0]) != 1:
            return None
    return [split, d0, s0, d1, s1] if all(uses.get(t) == 2 for t in split.tops) else None


def from_sigmoids(layers: list[ir.Layer]) -> list[ir.Layer] | None:
    """`layers` (shapes inferred) with each sigmoid form read back as the IR's softmax
    form (shapes to infer again), or None where there is none."""
    uses = _uses(layers)
    taken = {name for layer in layers for name in (layer.name, *layer.tops)}
    out: list[ir.Layer] = []
    found = False
    i = 0
    while i < len(layers):
        unit = _sigmoid_unit(layers, i, uses)
        if unit is None:
            out.append(layers[i])
            i += 1
            continue
        split, _, s0, _, s1 = unit
        channels = split.top_shapes[0][1]
        view = _fresh(f"{split.name}_view", taken)
        softmax = _fresh(f"{split.name}_softmax", taken)
        pieces = (_fresh(f"{split.name}_w0", taken), _fresh(f"{split.name}_w1", taken))
        out += [ir.Layer(view, "Reshape", split.bottoms, (view,),
                         ir.ReshapeParam(shape=(0, 2, channels, 1)), stage=split.stage),
                ir.Layer(softmax, "Softmax", (view,), (softmax,), ir.SoftmaxParam(axis=1),
                         stage=split.stage),
                ir.Layer(split.name, "Slice", (softmax,), pieces,
                         ir.SliceParam(axis=1, slice_point=(1,)), stage=split.stage)]
        out += [ir.Layer(s.name, "Reshape", (piece,), s.tops,
                         ir.ReshapeParam(shape=(0, channels, 1, 1)), stage=s.stage)
                for s, piece in zip((s0, s1), pieces)]
        found = True
        i += len(unit)
    return [replace(layer, top_shapes=(), blob_shapes=()) for layer in out] if found else None
