"""Deterministic initial weights, the same numbers for model.caffemodel and model.onnx.

Weights are a plain mapping: layer name -> that layer's blobs in Caffe's order, float32.
Each layer draws from its own generator seeded by (seed, layer name), so the numbers of a
layer do not depend on what comes before it: a net read back from Caffe files, or one with
a layer renamed elsewhere, gets the same numbers for the same layer.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from netgen.arch import ir

Weights = dict[str, list[np.ndarray]]

PRELU_INITIAL_SLOPE = 0.25  # Caffe's PReLU default filler


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())])))


def _he_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Caffe's "msra" filler with its default variance_norm FAN_IN: std = sqrt(2 / fan_in)."""
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in)))


def residual_scales(graph: ir.Graph) -> set[str]:
    """Scale layers that end a residual branch: the last Scale on the way back from an
    Eltwise's last bottom through convolutions and ReLUs only.

    That is the Eltwise's own input in the paper's blocks (scale2a_branch2c) and the
    pre-activation of the last convolution in pre-activation blocks (scale2a_branch2c before
    res2a_branch2c): ReLU(d x) = d ReLU(x) for d > 0 and a convolution without bias is
    linear, so scaling that Scale's gamma (its beta starts at 0) scales the branch alike.
    An SE block's sum is an Axpy whose branch is its x (bottom 1); the gate, a sigmoid,
    lies in (0, 1), so damping the branch's Scale bounds the product as well.
    """
    # For each layer, the layers that wrote its bottoms at the time it ran (in-place aware).
    feeders: list[list[int]] = []
    last_writer: dict[str, int] = {}
    found: set[str] = set()
    layers = graph.layers
    for i, layer in enumerate(layers):
        feeders.append([last_writer[b] for b in layer.bottoms if b in last_writer])
        branch = (layer.bottoms[-1] if layer.type == "Eltwise" and layer.bottoms
                  else layer.bottoms[1] if layer.type == "Axpy" and len(layer.bottoms) == 3
                  else None)
        if branch is not None and branch in last_writer:
            j: int | None = last_writer[branch]
            while j is not None:
                writer = layers[j]
                if writer.type == "Scale":
                    found.add(writer.name)
                    break
                passes = writer.type == "ReLU" or (writer.type == "Convolution"
                                                    and not writer.param.bias_term)
                j = feeders[j][0] if passes and len(feeders[j]) == 1 else None
        for top in layer.tops:
            last_writer[top] = i
    return found


def initial_weights(graph: ir.Graph, seed: int = 0) -> Weights:
    """He-initialised convolutions and fc, BatchNorm mean 0 / variance 1 / factor 1, Scale 1 / 0.

    One departure from "Scale 1": the last Scale of each residual branch (residual_scales)
    starts at 1 / sqrt(number of residual blocks). Without it the residual stream's variance roughly
    doubles per block and CIFAR ResNet-1202's outputs overflow float32 before any training;
    with it the growth stays below e for any depth (the idea of Fixup / SkipInit).
    """
    blocks = sum(1 for layer in graph.layers if layer.type in ("Eltwise", "Axpy"))
    branch_end = residual_scales(graph)
    damp = np.float32(1.0 / math.sqrt(blocks)) if blocks else np.float32(1.0)
    weights: Weights = {}
    for layer in graph.layers:
        shapes = layer.blob_shapes
        if not shapes:
            continue
        rng = _rng(seed, layer.name)
        if layer.fixed:
            blobs = [np.ones(s, dtype=np.float32) for s in shapes]
        elif layer.type in ("Convolution", "InnerProduct"):
            weight_shape = shapes[0]
            if layer.type == "InnerProduct" and layer.param.transpose:
                weight = _he_normal(rng, weight_shape[::-1]).T.copy()
            else:
                weight = _he_normal(rng, weight_shape)
            blobs = [weight] + [np.zeros(s, dtype=np.float32) for s in shapes[1:]]
        elif layer.type == "BatchNorm":
            blobs = [np.zeros(shapes[0], np.float32), np.ones(shapes[1], np.float32),
                     np.ones(shapes[2], np.float32)]
        elif layer.type == "Scale":
            gamma = np.full(shapes[0], damp if layer.name in branch_end else 1.0, np.float32)
            blobs = [gamma] + [np.zeros(s, np.float32) for s in shapes[1:]]
        elif layer.type == "PReLU":
            blobs = [np.full(shapes[0], PRELU_INITIAL_SLOPE, np.float32)]
        else:  # Bias and anything else additive
            blobs = [np.zeros(s, np.float32) for s in shapes]
        weights[layer.name] = blobs
    return weights


def trained_looking(graph: ir.Graph, weights: Weights, seed: int = 0) -> Weights:
    """`weights` with BatchNorm statistics, Scale values and PReLU slopes drawn as a trained
    net has them: mean N(0, 0.05), variance U(0.8, 1.2), gamma times U(0.8, 1.2), beta
    N(0, 0.05), slopes U(0.05, 0.5).

    initial_weights makes every BatchNorm and Scale an identity and every PReLU slope 0.25,
    under which a runtime that skips such a layer, or hands back the tensor before it, still
    agrees; validate's checks in other runtimes use these instead. The ranges are narrow
    enough that a deep net's activations stay as tame as with initial_weights."""
    out: Weights = {name: list(blobs) for name, blobs in weights.items()}
    for layer in graph.layers:
        blobs = out.get(layer.name)
        if not blobs or layer.fixed:
            continue
        rng = _rng(seed + 1, layer.name)
        if layer.type == "BatchNorm":
            shape = blobs[0].shape
            factor = blobs[2].reshape(-1)[0] if len(blobs) > 2 else np.float32(1)
            blobs[0] = (rng.normal(0, 0.05, shape) * factor).astype(np.float32)
            blobs[1] = (rng.uniform(0.8, 1.2, shape) * factor).astype(np.float32)
        elif layer.type == "Scale":
            blobs[0] = (blobs[0] * rng.uniform(0.8, 1.2, blobs[0].shape)).astype(np.float32)
            if len(blobs) > 1:
                blobs[1] = rng.normal(0, 0.05, blobs[1].shape).astype(np.float32)
        elif layer.type == "PReLU":
            blobs[0] = rng.uniform(0.05, 0.5, blobs[0].shape).astype(np.float32)
    return out
