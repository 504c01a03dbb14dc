"""Caffe files for the runtimes people deploy to: the layer forms each one reads right.

A Caffe file that is right by BVLC Caffe's definition is not right for a user whose runtime
reads it otherwise. MNN's Caffe converter (the `mnn` wheel, 3.6) is the case in point. Found
by experiment with the real wheel against ONNX Runtime and OpenCV, on whole networks and on
nets of two or three layers:

- SE's stock product (Flatten of the gate, then a two-bottom Scale with axis 0) is rejected:
  MNN's Scale wants a weight blob (`w0->blobs_size() >= 1 ==> caffemodel error!`, and the
  converter process then crashes). MNN has no Caffe Tile either. The "mnn" target broadcasts
  the N x C x 1 x 1 gate to N x C x H x W with a Deconvolution of ones (group C, kernel H x W,
  stride 1, no bias: each output pixel is the one input pixel times 1), multiplies by
  Eltwise PROD and adds the shortcut by Eltwise SUM. BVLC Caffe, OpenCV and MNN compute it
  exactly. A gate product with no shortcut (the radix parts of timm's split attention, the
  IR's Flatten and two-bottom Scale) is the same Deconvolution and Eltwise PROD.
- MNN's Softmax subtracts no maximum: it clamps the exponent to about +-87, so logits past
  that come out wrong (split attention's (-109.3, -106.6) as 0.5, 0.5 for 0.058, 0.942 in a
  refilled timm resnest26d). A Softmax over an axis of two (radix 2) of a 4-D blob is
  written as the sigmoids of the differences (Slice, Power -1, Eltwise SUM, Sigmoid, Concat).
- A blob written in place does not name one tensor in MNN: the converter names an in-place
  layer's output after the layer, and the blob's name stays with its first writer. A user who
  reads a face-recognition embedding by its blob name (`embedding`, written by a BatchNorm and
  then in place by its Scale) silently gets the BatchNorm's output, 25% to 80% off; so does
  anyone reading `res5c` (the sum before its in-place ReLU) or an fc's output that a PReLU
  rewrites in place. That is what looked like MNN computing PReLU, or a 2-D BatchNorm + Scale,
  wrong: both are computed right, and read by MNN's names they are exact. The "mnn" target
  writes no layer in place: each such layer writes a blob named after itself (the name MNN,
  and netgen's ONNX emitter, give its output), and the layers after it read that blob. Every
  blob name then means one tensor in Caffe, MNN and model.onnx alike; BVLC Caffe and OpenCV
  run the file as before, holding each intermediate blob apart.

Every form here is stock BVLC Caffe, so one file serves every target. The reader
(netgen.caffe.reader) folds the SE form back into the IR's Axpy, and a blob written once reads
as the same IR as one written in place, so diff, identify, draw and --like see the network,
not its spelling.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from netgen.arch import ir, shapes
from netgen.arch.weights import Weights
from netgen.errors import NetgenError

TARGETS = ("bvlc", "mnn")
TARGET_HELP = ("Which Caffe runtime the files are for. bvlc (default): stock BVLC Caffe "
               "forms (OpenCV reads them too). mnn: only forms MNN's Caffe converter converts "
               "and reads right (SE's gate broadcast by a Deconvolution of ones; a softmax of "
               "two as sigmoids; no layer in "
               "place, so that each blob name is one tensor in MNN too); BVLC Caffe and OpenCV "
               "run them as well.")
# The suffix of the layer the SE form adds; the reader recognises the form by its structure.
BROADCAST_SUFFIX = "_se_broadcast"


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise NetgenError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}")


def _taken(graph: ir.Graph) -> set[str]:
    names = {blob.name for blob in graph.inputs}
    for layer in graph.layers:
        names.add(layer.name)
        names.update(layer.tops)
    return names


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _se_broadcast(layer: ir.Layer, shape: ir.Shape, taken: set[str]) -> list[ir.Layer]:
    """Axpy(gate, x, y) as Deconvolution(gate) of ones, Eltwise PROD with x, Eltwise SUM."""
    gate, x, y = layer.bottoms
    _, channels, height, width = shape
    wide = _fresh(f"{layer.name}{BROADCAST_SUFFIX}", taken)
    product = _fresh(f"{layer.name}_se_prod", taken)
    return [
        ir.Layer(wide, "Deconvolution", (gate,), (wide,),
                 ir.ConvolutionParam(num_output=channels, kernel=(height, width),
                                     group=channels, bias_term=False),
                 stage=layer.stage, fixed=True),
        ir.Layer(product, "Eltwise", (wide, x), (product,), ir.EltwiseParam("PROD"),
                 stage=layer.stage),
        ir.Layer(layer.name, "Eltwise", (y, product), layer.tops, ir.EltwiseParam("SUM"),
                 stage=layer.stage),
    ]


def _gate_broadcast(scale: ir.Layer, gate: str, shape: ir.Shape, taken: set[str]) -> list[ir.Layer]:
    """A gate product with no shortcut (Flatten of the gate, two-bottom Scale with axis 0:
    split attention's radix parts) as Deconvolution(gate) of ones and Eltwise PROD with x."""
    _, channels, height, width = shape
    wide = _fresh(f"{scale.name}{BROADCAST_SUFFIX}", taken)
    return [
        ir.Layer(wide, "Deconvolution", (gate,), (wide,),
                 ir.ConvolutionParam(num_output=channels, kernel=(height, width),
                                     group=channels, bias_term=False),
                 stage=scale.stage, fixed=True),
        ir.Layer(scale.name, "Eltwise", (wide, scale.bottoms[0]), scale.tops,
                 ir.EltwiseParam("PROD"), stage=scale.stage),
    ]


def _pair_softmax(layer: ir.Layer, taken: set[str]) -> list[ir.Layer]:
    """Softmax over an axis of two (split attention's radix 2) as the sigmoids of the two
    differences: e^a / (e^a + e^b) = sigmoid(a - b). MNN's Softmax subtracts no maximum and
    clamps the exponent to about +-87, which logits past that get wrong; its Sigmoid
    saturates where the answer does."""
    axis = layer.param.axis
    a, b, negated, diff, flipped, first, second = (
        _fresh(f"{layer.name}_{part}", taken)
        for part in ("a", "b", "neg_b", "diff", "neg_diff", "p_a", "p_b"))
    stage = layer.stage
    return [
        ir.Layer(f"{a}_slice", "Slice", layer.bottoms, (a, b),
                 ir.SliceParam(axis=axis, slice_point=(1,)), stage=stage),
        ir.Layer(negated, "Power", (b,), (negated,), ir.PowerParam(scale=-1.0), stage=stage),
        ir.Layer(diff, "Eltwise", (a, negated), (diff,), ir.EltwiseParam("SUM"), stage=stage),
        ir.Layer(flipped, "Power", (diff,), (flipped,), ir.PowerParam(scale=-1.0), stage=stage),
        ir.Layer(first, "Sigmoid", (diff,), (first,), ir.NoParam(), stage=stage),
        ir.Layer(second, "Sigmoid", (flipped,), (second,), ir.NoParam(), stage=stage),
        ir.Layer(layer.name, "Concat", (first, second), layer.tops, ir.ConcatParam(axis=axis),
                 stage=stage),
    ]


def _flattened_gates(graph: ir.Graph) -> dict[str, str]:
    """Flatten layer name -> its N x C x 1 x 1 gate, for each Flatten read only by the
    second bottom of a two-bottom Scale with axis 0 (the IR's stock gate product)."""
    uses: dict[str, int] = {}
    for layer in graph.layers:
        for bottom in layer.bottoms:
            uses[bottom] = uses.get(bottom, 0) + 1
    flats = {layer.tops[0]: layer for layer in graph.layers if layer.type == "Flatten"
             and len(layer.tops) == 1 and layer.param == ir.FlattenParam()}
    found = {}
    for layer in graph.layers:
        if layer.type == "Scale" and len(layer.bottoms) == 2 and layer.param.axis % 4 == 0 \
                and layer.bottoms[1] in flats and uses.get(layer.bottoms[1]) == 1 \
                and layer.top_shapes and len(layer.top_shapes[0]) == 4:
            flat = flats[layer.bottoms[1]]
            if flat.top_shapes and len(flat.top_shapes[0]) == 2:
                found[flat.name] = flat.bottoms[0]
    return found


def _out_of_place(layers: list[ir.Layer], taken: set[str]) -> list[ir.Layer]:
    """`layers` with every in-place layer writing a blob named after itself (fresh where that
    name is a blob already) and every later reader of the blob reading that one instead."""
    current: dict[str, str] = {}  # a blob's name in the file -> the name it has now
    out = []
    for layer in layers:
        bottoms = tuple(current.get(b, b) for b in layer.bottoms)
        tops = []
        for top in layer.tops:
            if top in layer.bottoms:
                fresh = _fresh(layer.name if len(layer.tops) == 1 else f"{layer.name}_{top}",
                               taken)
                current[top] = fresh
                tops.append(fresh)
            else:
                current.pop(top, None)
                tops.append(top)
        out.append(replace(layer, bottoms=bottoms, tops=tuple(tops)))
    return out


def realize(graph: ir.Graph, weights: Weights | None,
            target: str) -> tuple[ir.Graph, Weights | None]:
    """`graph` and its weights in the layer forms `target` reads right (see the module
    docstring). The "bvlc" target returns them unchanged; realized layers keep their names, so
    the weights of every original layer carry over."""
    check_target(target)
    if target == "bvlc":
        return graph, weights
    taken = _taken(graph)
    current = {blob.name: blob.shape for blob in graph.inputs}
    layers: list[ir.Layer] = []
    out_weights: Weights | None = None if weights is None else dict(weights)
    flattened = _flattened_gates(graph)
    gate_of: dict[str, str] = {}  # a dropped Flatten's top -> the gate it flattened
    for layer in graph.layers:
        bottom_shapes = [current[b] for b in layer.bottoms]
        current.update(zip(layer.tops, layer.top_shapes))
        if layer.name in flattened:
            gate_of[layer.tops[0]] = flattened[layer.name]
            continue
        if layer.type == "Scale" and len(layer.bottoms) == 2 and layer.bottoms[1] in gate_of:
            parts = _gate_broadcast(layer, gate_of[layer.bottoms[1]], bottom_shapes[0], taken)
        elif layer.type == "Axpy":
            parts = _se_broadcast(layer, bottom_shapes[1], taken)
        elif layer.type == "Softmax" and len(bottom_shapes[0]) == 4 \
                and bottom_shapes[0][layer.param.axis % 4] == 2 and layer.param.axis % 4 > 0:
            layers.extend(_pair_softmax(layer, taken))
            continue
        else:
            layers.append(layer)
            continue
        x_shape = bottom_shapes[0] if layer.type == "Scale" else bottom_shapes[1]
        if out_weights is not None:
            out_weights[parts[0].name] = [np.ones((x_shape[1], 1, *x_shape[2:]), np.float32)]
        layers.extend(parts)
    blobs = {blob.name for blob in graph.inputs} | {t for layer in layers for t in layer.tops}
    layers = _out_of_place(layers, blobs)
    return shapes.infer(graph.name, graph.inputs,
                        [replace(layer, top_shapes=(), blob_shapes=()) for layer in layers]), \
        out_weights
