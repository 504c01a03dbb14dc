"""Parameters and multiply-adds, counted the way the paper counts them.

Parameters: learned blobs only (convolution and fc weights and biases, Scale's gamma/beta,
PReLU slopes). BatchNorm's mean/variance/factor are statistics, and `fixed` layers
(option A's subsample) are constants, so neither counts. Multiply-adds: convolutions and
fully connected layers, as in Table 1.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from netgen.arch import ir

STATISTICS_ONLY = frozenset({"BatchNorm"})
# A block ends in the ReLU named after it (res2a_relu, res4b22_relu), plain or residual, or
# (pre-activation) in its sum (res2a), with no ReLU after it.
BLOCK_OUTPUT = re.compile(r"^res(\d+[a-z]\d*)(?:_relu)?$")
BLOCK_OUTPUT_TYPES = frozenset({"ReLU", "Eltwise", "Axpy"})


def layer_params(layer: ir.Layer) -> int:
    if layer.fixed or layer.type in STATISTICS_ONLY:
        return 0
    return sum(math.prod(shape) for shape in layer.blob_shapes)


def layer_macs(layer: ir.Layer) -> int:
    """Multiply-adds for one sample (batch dimension divided out)."""
    if layer.fixed or not layer.blob_shapes:
        return 0
    if layer.type == "Convolution":
        out = layer.top_shapes[0]
        weight = layer.blob_shapes[0]  # (out_c, in_c / group, kh, kw)
        return math.prod(out[1:]) * math.prod(weight[1:])
    if layer.type == "Deconvolution":  # each input pixel times its group's whole kernel
        p = layer.param
        out = layer.top_shapes[0]
        pixels = math.prod((size + 2 * pad - d * (k - 1) - 1) // s + 1 for size, k, s, pad, d
                           in zip(out[2:], p.kernel, p.stride, p.pad, p.dilation))
        return pixels * math.prod(layer.blob_shapes[0])
    if layer.type == "InnerProduct":
        out = layer.top_shapes[0]
        weight = layer.blob_shapes[0]
        return math.prod(out[1:-1]) * math.prod(weight)
    return 0


def _block_ids(layers: list[ir.Layer]) -> set[str]:
    found = set()
    for layer in layers:
        mark = BLOCK_OUTPUT.match(layer.name) if layer.type in BLOCK_OUTPUT_TYPES else None
        if mark:
            found.add(mark.group(1))
    return found


@dataclass(frozen=True)
class StageCount:
    stage: str
    output_size: tuple[int, ...]
    blocks: int
    params: int
    macs: int


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int
    stages: tuple[StageCount, ...]
    layer_types: dict[str, int]


def count(graph: ir.Graph, blocks: dict[str, int] | None = None) -> Counts:
    """Totals, per-stage figures (in order of first appearance) and layers by type; the
    blocks per stage as given (a file's, told by its topology), else told by the names."""
    stage_layers: dict[str, list[ir.Layer]] = {}  # dicts keep first-appearance order
    for layer in graph.layers:
        stage_layers.setdefault(layer.stage or "unassigned", []).append(layer)
    stages = tuple(
        StageCount(
            stage=stage,
            output_size=tuple(layers[-1].top_shapes[0][1:]),
            blocks=blocks.get(stage, 0) if blocks is not None else len(_block_ids(layers)),
            params=sum(layer_params(l) for l in layers),
            macs=sum(layer_macs(l) for l in layers),
        )
        for stage, layers in stage_layers.items())
    types = Counter(layer.type for layer in graph.layers)
    return Counts(params=sum(s.params for s in stages), macs=sum(s.macs for s in stages),
                  stages=stages, layer_types=dict(sorted(types.items())))
