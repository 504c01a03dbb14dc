"""What both readers share: the stage labels, the option-A subsample, float32 fields.

A Caffe file and an ONNX file of the same network must come out as the same IR, so the
rules that recover what the builder knew (which stage a layer belongs to, whether a 1x1
depthwise convolution is option A's fixed subsample) live here, in the architecture core,
and not in either reader.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from netgen.arch import ir
from netgen.arch.weights import Weights

# Stage names as the builder assigns them, recovered from MSRA-style layer names.
_BLOCK_NAME = re.compile(r"^(?:res|bn|scale)(\d+)[a-z]")
_TORCH_STAGE = re.compile(r"(?:^|[/.])layer(\d+)(?:[/.]|$)")
# SENet's Caffe names: conv2_1_1x1_reduce, conv3_4/relu, conv5_3 (stage 2 and up).
_SENET_STAGE = re.compile(r"^conv([2-9]|[1-9]\d+)_\d+(?:[_/]|$)")


def f32(value: float) -> float:
    """A float field of the proto (stored as float32) as the shortest decimal that reads back
    as the same float32: 1e-05, not 9.999999747378752e-06."""
    single = np.float32(value)
    for digits in range(1, 10):
        candidate = float(f"{float(single):.{digits}g}")
        if np.float32(candidate) == single:
            return candidate
    return float(single)


def _stage_of(name: str) -> str | None:
    """convN_x for a layer of a residual stage: MSRA names (res3a_branch1, bn4b2_branch2a,
    scale5c_branch2c), PyTorch's (/layer2/layer2.0/conv1/Conv: layer1 is conv2_x) or
    SENet's (conv3_1_1x1_reduce/bn)."""
    mark = _BLOCK_NAME.match(name)
    if mark:
        return f"conv{mark.group(1)}_x"
    mark = _TORCH_STAGE.search(name)
    if mark:
        return f"conv{int(mark.group(1)) + 1}_x"
    mark = _SENET_STAGE.match(name)
    if mark:
        return f"conv{mark.group(1)}_x"
    return None


def assign_stages(layers: list[ir.Layer]) -> list[ir.Layer]:
    """Stage labels as the builder gives them (conv1, convN_x, head), recovered from names;
    layers are left unassigned where no name says which stage it is."""
    marks = [_stage_of(layer.name) for layer in layers]
    block_at = [i for i, m in enumerate(marks) if m]
    if not block_at:
        return list(layers)
    first, last = block_at[0], block_at[-1]
    out, stage = [], "conv1"
    for i, (layer, mark) in enumerate(zip(layers, marks)):
        if mark:
            stage = mark
        elif i > last:
            stage = "head"
        elif i < first:
            stage = "conv1"
        out.append(replace(layer, stage=stage))
    return out


def is_subsample_pattern(layer: ir.Layer) -> bool:
    """A depthwise 1x1 convolution without bias: the shape of option A's fixed subsample
    (strided) and of a zero padding written in Caffe's layers (padded: Keras's
    ZeroPadding2D where no layer after it can take the zeros)."""
    if layer.type != "Convolution":
        return False
    p: ir.ConvolutionParam = layer.param
    return (p.kernel == (1, 1) and not p.bias_term and p.dilation == (1, 1)
            and p.group == p.num_output
            and bool(layer.blob_shapes) and layer.blob_shapes[0] == (p.num_output, 1, 1, 1))


def mark_fixed_by_weights(graph: ir.Graph, weights: Weights) -> ir.Graph:
    """With real weights (a caffemodel's, an ONNX file's) the subsample or zero padding is
    fixed exactly when its weights are all 1."""
    layers = []
    for layer in graph.layers:
        if is_subsample_pattern(layer):
            ones = all(bool(np.all(blob == 1.0)) for blob in weights[layer.name])
            layer = replace(layer, fixed=ones)
        layers.append(layer)
    return graph.with_layers(layers)
