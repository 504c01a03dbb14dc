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
  exactly. A gate product on its own (a two-bottom Scale of a flattened N x C x 1 x 1 gate
  that no Eltwise SUM adds to a shortcut: the first of a selective-kernel unit's weighted
  paths or of split attention's radix parts, a GroupNorm's (var + eps)^-0.5 times
  x - mean) is the same Deconvolution and Eltwise PROD.
- MNN's Softmax subtracts no maximum: it clamps the exponent to about +-87, so logits past
  that come out wrong (split attention's (-109.3, -106.6) as 0.5, 0.5 for 0.058, 0.942 in a
  refilled timm resnest26d; a refilled skresnet18's (-86.2, -107.5) as 0.70, 0.30). A
  Softmax over an axis of two (an SK unit's two paths, radix 2) of a 4-D blob is written as
  the sigmoids of the differences (Slice, Power -1, Eltwise SUM, Sigmoid, Concat), which it
  is exactly.
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


def _broadcast_product(name: str, gate: str, x: str, shape: ir.Shape, stage: str,
                       product: str, taken: set[str]) -> list[ir.Layer]:
    """gate * x as Deconvolution(gate) of ones (the N x C x 1 x 1 gate made N x C x H x W)
    and Eltwise PROD `name` with x, writing `product`."""
    _, channels, height, width = shape
    wide = _fresh(f"{name}{BROADCAST_SUFFIX}", taken)
    return [
        ir.Layer(wide, "Deconvolution", (gate,), (wide,),
                 ir.ConvolutionParam(num_output=channels, kernel=(height, width),
                                     group=channels, bias_term=False),
                 stage=stage, fixed=True),
        ir.Layer(name, "Eltwise", (wide, x), (product,), ir.EltwiseParam("PROD"), stage=stage),
    ]


def _se_broadcast(layer: ir.Layer, shape: ir.Shape, taken: set[str]) -> list[ir.Layer]:
    """Axpy(gate, x, y) as Deconvolution(gate) of ones, Eltwise PROD with x, Eltwise SUM."""
    gate, x, y = layer.bottoms
    product = _fresh(f"{layer.name}_se_prod", taken)
    return _broadcast_product(product, gate, x, shape, layer.stage, product, taken) + [
        ir.Layer(layer.name, "Eltwise", (y, product), layer.tops, ir.EltwiseParam("SUM"),
                 stage=layer.stage),
    ]


def _pair_softmax(layer: ir.Layer, taken: set[str]) -> list[ir.Layer]:
    """Softmax over an axis of two (an SK unit's two paths, split attention's radix 2) as the
    sigmoids of the two differences: e^a / (e^a + e^b) = sigmoid(a - b). MNN's Softmax
    subtracts no maximum and clamps the exponent to about +-87, which logits past that get
    wrong; its Sigmoid saturates where the answer does."""
    axis = layer.param.axis
    cut, a, b, negated, diff, flipped, first, second = (
        _fresh(f"{layer.name}_{part}", taken)
        for part in ("slice", "a", "b", "neg_b", "diff", "neg_diff", "p_a", "p_b"))
    stage = layer.stage
    return [
        ir.Layer(cut, "Slice", layer.bottoms, (a, b),
                 ir.SliceParam(axis=axis, slice_point=(1,)), stage=stage),
        ir.Layer(negated, "Power", (b,), (negated,), ir.PowerParam(scale=-1.0), stage=stage),
        ir.Layer(diff, "Eltwise", (a, negated), (diff,), ir.EltwiseParam("SUM"), stage=stage),
        ir.Layer(flipped, "Power", (diff,), (flipped,), ir.PowerParam(scale=-1.0), stage=stage),
        ir.Layer(first, "Sigmoid", (diff,), (first,), ir.NoParam(), stage=stage),
        ir.Layer(second, "Sigmoid", (flipped,), (second,), ir.NoParam(), stage=stage),
        ir.Layer(layer.name, "Concat", (first, second), layer.tops, ir.ConcatParam(axis=axis),
                 stage=stage),
    ]


def _gate_products(graph: ir.Graph) -> dict[str, ir.Layer]:
    """The gate products the ONNX importer writes on their own (a two-bottom Scale with axis
    0 of x, N x C x H x W, by a Flatten of an N x C x 1 x 1 gate that nothing else reads: a
    selective-kernel unit's first weighted path, an SE product not added to a shortcut), by
    the Flatten's top."""
    shape = {blob.name: blob.shape for blob in graph.inputs}
    flats: dict[str, ir.Layer] = {}
    uses = ir.bottom_uses(graph.layers)
    for layer in graph.layers:
        if layer.type == "Flatten" and layer.param == ir.FlattenParam():
            flats[layer.tops[0]] = layer
        shape.update(zip(layer.tops, layer.top_shapes))
    found = {}
    for layer in graph.layers:
        if layer.type != "Scale" or len(layer.bottoms) != 2 or layer.bottoms[1] not in flats \
                or uses.get(layer.bottoms[1]) != 1 or layer.param.bias_term:
            continue
        x = shape[layer.bottoms[0]]
        gate = shape[flats[layer.bottoms[1]].bottoms[0]]
        if len(x) == 4 and layer.param.axis % 4 == 0 and gate == (x[0], x[1], 1, 1):
            found[layer.bottoms[1]] = flats[layer.bottoms[1]]
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
    gates = _gate_products(graph)
    for layer in graph.layers:
        bottom_shapes = [current[b] for b in layer.bottoms]
        current.update(zip(layer.tops, layer.top_shapes))
        if layer.type == "Flatten" and layer.tops[0] in gates:
            continue  # the Deconvolution broadcasts the gate itself
        if layer.type == "Scale" and len(layer.bottoms) == 2 and layer.bottoms[1] in gates:
            x = bottom_shapes[0]
            parts = _broadcast_product(layer.name, gates[layer.bottoms[1]].bottoms[0],
                                       layer.bottoms[0], x, layer.stage, layer.tops[0], taken)
            if out_weights is not None:
                out_weights.pop(layer.name, None)
        elif layer.type == "Softmax" and len(bottom_shapes[0]) == 4 \
                and bottom_shapes[0][layer.param.axis % 4] == 2 and layer.param.axis % 4 > 0:
            layers.extend(_pair_softmax(layer, taken))
            continue
        elif layer.type == "Axpy":
            x = bottom_shapes[1]
            parts = _se_broadcast(layer, x, taken)
        else:
            layers.append(layer)
            continue
        if out_weights is not None:
            out_weights[parts[0].name] = [np.ones((x[1], 1, *x[2:]), np.float32)]
        layers.extend(parts)
    blobs = {blob.name for blob in graph.inputs} | {t for layer in layers for t in layer.tops}
    layers = _out_of_place(layers, blobs)
    return shapes.infer(graph.name, graph.inputs,
                        [replace(layer, top_shapes=(), blob_shapes=()) for layer in layers]), \
        out_weights
