"""Caffe files for the runtimes people deploy to: the layer forms each one computes right.

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
  exactly.
- BatchNorm followed by Scale on a 2-D blob (N x C: the BatchNorm1d of a face-recognition
  embedding after its fc) is converted without a word and computed wrong (13% to 50% off;
  either layer alone is right). The "mnn" target reshapes the blob to N x C x 1 x 1 first
  (Reshape 0,-1,1,1), where the pair is right, and flattens it back afterwards.
- PReLU, reported wrong, is computed right by MNN 3.6 (per-channel and shared, in place or
  not, after a Convolution or a Scale: within 2e-6): the error seen on IResNets is the
  2-D BatchNorm + Scale of their embedding. PReLU is written as it is; the tests keep
  checking it in MNN.

Every form here is stock BVLC Caffe, so one file serves every target. The reader
(netgen.caffe.reader) folds each back into what it stands for (an Axpy, a BatchNorm and Scale
on the 2-D blob), so that diff, identify, draw and --like see the network, not its spelling.
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
               "and computes right (SE's gate broadcast by a Deconvolution of ones, a 2-D "
               "BatchNorm + Scale on N x C x 1 x 1); BVLC Caffe and OpenCV run them as well.")
# Layers that act per channel on a 2-D blob and that MNN gets wrong in a BatchNorm + Scale run.
AFFINE_2D = ("BatchNorm", "Scale")
# Suffixes of the layers and blobs the "mnn" forms add; the reader recognises the forms by
# their structure, not by these names.
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


def _affine_runs(graph: ir.Graph) -> dict[int, int]:
    """start -> end (exclusive) of each run of BatchNorm/Scale layers on one 2-D blob that
    holds a BatchNorm followed by a Scale: each layer reads the previous one's top."""
    runs: dict[int, int] = {}
    layers = graph.layers
    i = 0
    while i < len(layers):
        j = i
        while (j < len(layers) and layers[j].type in AFFINE_2D
               and len(layers[j].bottoms) == 1 and len(layers[j].top_shapes[0]) == 2
               and (j == i or layers[j].bottoms[0] == layers[j - 1].tops[0])):
            j += 1
        kinds = [layer.type for layer in layers[i:j]]
        if any(a == "BatchNorm" and b == "Scale" for a, b in zip(kinds, kinds[1:])):
            runs[i] = j
        i = max(j, i + 1)
    return runs


def _rename(layer: ir.Layer, old: str, new: str) -> ir.Layer:
    swap = lambda names: tuple(new if n == old else n for n in names)  # noqa: E731
    return replace(layer, bottoms=swap(layer.bottoms), tops=swap(layer.tops))


def _wrap_2d(layers: list[ir.Layer], start: int, end: int, taken: set[str]) -> list[ir.Layer]:
    """layers[start:end] (a 2-D BatchNorm + Scale run) on N x C x 1 x 1: Reshape before,
    Flatten after, writing the run's last top under its own name. Where the run starts in
    place on its input, the input is renamed back to the layer that first wrote it (so the
    blob name the run ends with, often the net's output, stays)."""
    run = layers[start:end]
    source, final = run[0].bottoms[0], run[-1].tops[0]
    head = layers[:start]
    if final == source or any(final in layer.tops for layer in head):
        renamed = _fresh(f"{source}_2d", taken)
        first = max(i for i, layer in enumerate(head)
                    if source in layer.tops and source not in layer.bottoms)
        head = head[:first] + [_rename(layer, source, renamed) for layer in head[first:]]
        source = renamed
    square = _fresh(f"{run[0].name}_4d", taken)
    body = [ir.Layer(square, "Reshape", (source,), (square,), ir.ReshapeParam((0, -1, 1, 1)),
                     stage=run[0].stage)]
    body += [replace(layer, bottoms=(square,), tops=(square,)) for layer in run]
    body.append(ir.Layer(_fresh(f"{run[-1].name}_2d", taken), "Flatten", (square,), (final,),
                         ir.FlattenParam(), stage=run[-1].stage))
    return head + body + layers[end:]


def realize(graph: ir.Graph, weights: Weights | None,
            target: str) -> tuple[ir.Graph, Weights | None]:
    """`graph` and its weights in the layer forms `target` computes right (see the module
    docstring). The "bvlc" target, and a graph with nothing to change, come back as they are;
    realized layers keep their names, so the weights of every original layer carry over."""
    check_target(target)
    runs = _affine_runs(graph) if target == "mnn" else {}
    if target == "bvlc" or (not runs and not any(layer.type == "Axpy"
                                                 for layer in graph.layers)):
        return graph, weights
    taken = _taken(graph)
    layers = list(graph.layers)
    for start in sorted(runs, reverse=True):  # from the end: earlier indices stay valid
        layers = _wrap_2d(layers, start, runs[start], taken)
    current = {blob.name: blob.shape for blob in graph.inputs}
    realized: list[ir.Layer] = []
    out_weights: Weights | None = None if weights is None else dict(weights)
    for layer in shapes.infer(graph.name, graph.inputs,
                              [replace(layer, top_shapes=(), blob_shapes=())
                               for layer in layers]).layers:
        bottom_shapes = [current[b] for b in layer.bottoms]
        current.update(zip(layer.tops, layer.top_shapes))
        if layer.type != "Axpy":
            realized.append(replace(layer, top_shapes=(), blob_shapes=()))
            continue
        parts = _se_broadcast(layer, bottom_shapes[1], taken)
        if out_weights is not None:
            out_weights[parts[0].name] = [np.ones((bottom_shapes[1][1], 1,
                                                   *bottom_shapes[1][2:]), np.float32)]
        realized.extend(parts)
    return shapes.infer(graph.name, graph.inputs, realized), out_weights
