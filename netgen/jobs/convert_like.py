"""`netgen convert MODEL.onnx --like NAME -o DIR`: a file's weights on the network netgen
builds for NAME.

Both graphs are reduced to what they compute: a convolution with the per-channel affine
maps after it (a conv bias, BatchNorm, Scale, Bias: folded or not is representation), a
pooling (a full-size average pooling is the global one), ReLU, a sum (its operands in any
order), an InnerProduct (a Flatten or Reshape before it is its own flattening), Dropout and
Split as nothing. Each unit gets an id interned from its parameters and its inputs' ids, so
equal ids mean equal sub-networks, whatever the names, the layer order or the exporter;
the two networks are the same architecture when their outputs (before a final Softmax) get
the same id. The first unit of NAME's net without an equal in the file is the reported
difference. Weights then go unit to unit: a folded BatchNorm becomes BatchNorm statistics
that are exactly the identity in float32 (mean 0, variance 1 - eps, moving-average factor
1) and the folded scale and shift in the Scale layer; a BatchNorm kept in the file keeps its
statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from netgen.arch import ir
from netgen.arch.spec import STEM_POOL_OWNER, STEM_POOLS, is_network_name, spec_from_name
from netgen.arch.weights import Weights
from netgen.errors import NetgenError

AFFINE_TYPES = ("BatchNorm", "Scale", "Bias")
PASS_TYPES = ("Dropout", "Split")
WITHOUT_LIKE = " (without --like, convert writes the file's own network)"
LIKE_FILES = ("deploy.prototxt", "model.caffemodel", "model.onnx", "model.onnx.data")


@dataclass
class Unit:
    """One architectural unit: its kind, parameters, inputs (unit indices) and IR layers."""

    kind: str
    key: tuple
    inputs: tuple[int, ...]
    layers: list[ir.Layer] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    id: int = -1
    open: bool = True  # a conv whose output nothing but an affine layer has read yet


class Canonical:
    """A graph as units with interned ids (the intern table is shared between graphs)."""

    def __init__(self, graph: ir.Graph, table: dict[tuple, int]):
        self.graph = graph
        self.table = table
        self.units: list[Unit] = []
        self.uses: dict[str, int] = {}
        for layer in graph.layers:
            for bottom in layer.bottoms:
                self.uses[bottom] = self.uses.get(bottom, 0) + 1
        producer: dict[str, int] = {}
        for blob in graph.inputs:
            producer[blob.name] = self._add(Unit("input", (tuple(blob.shape[1:]),), (),
                                                 shape=tuple(blob.shape)))
        for layer in graph.layers:
            self._layer(layer, producer)
        outputs = graph.outputs
        if not outputs:
            raise NetgenError(f"{graph.name}: the network has no output")
        self.output = producer[outputs[-1]]
        last = self.units[self.output]
        if last.kind == "softmax" and last.key == (1,):
            self.output = last.inputs[0]  # the deploy's Softmax: compare what it normalises

    def _add(self, unit: Unit) -> int:
        self.units.append(unit)
        return len(self.units) - 1

    def _intern(self, index: int) -> None:
        unit = self.units[index]
        inputs = tuple(self.units[i].id for i in unit.inputs)
        if unit.kind == "sum":
            inputs = tuple(sorted(inputs))
        unit.id = self.table.setdefault((unit.kind, unit.key, inputs), len(self.table))

    def _close(self, index: int) -> None:
        unit = self.units[index]
        if unit.open:
            unit.open = False
            self._intern(index)

    def _layer(self, layer: ir.Layer, producer: dict[str, int]) -> None:
        sources = [producer[b] for b in layer.bottoms]
        shape = layer.top_shapes[0] if layer.top_shapes else ()
        if layer.type in AFFINE_TYPES and len(sources) == 1:
            conv = self.units[sources[0]]
            # In place, or the only reader of the conv's value: the affine map is part of it.
            alone = layer.in_place or self.uses.get(layer.bottoms[0], 0) == 1
            per_channel = layer.type == "BatchNorm" or (layer.param.axis == 1 and
                                                        layer.param.num_axes == 1)
            if conv.kind == "conv" and conv.open and alone and per_channel:
                conv.layers.append(layer)
                for top in layer.tops:
                    producer[top] = sources[0]
                return
        for index in sources:
            self._close(index)
        if layer.type in PASS_TYPES or (layer.type in ("Flatten", "Reshape") and
                                        self._flattens(sources[0], shape)):
            for top in layer.tops:
                producer[top] = sources[0]
            return
        p = layer.param
        if layer.type == "Convolution":
            unit = Unit("conv", (p.kernel, p.stride, p.pad, p.dilation, p.group, p.num_output,
                                 layer.fixed), tuple(sources), [layer], shape)
        elif layer.type == "Pooling":
            unit = Unit("pool", self._pool_key(p, self.units[sources[0]].shape), tuple(sources),
                        [layer], shape)
        elif layer.type == "ReLU":
            unit = Unit("relu", (p.negative_slope,), tuple(sources), [layer], shape)
        elif layer.type == "Eltwise" and p.operation == "SUM" and all(c == 1 for c in p.coeff):
            unit = Unit("sum", (), tuple(sources), [layer], shape)
        elif layer.type == "InnerProduct":
            unit = Unit("fc", (p.num_output, p.transpose, p.axis), tuple(sources), [layer], shape)
        elif layer.type == "Softmax":
            unit = Unit("softmax", (p.axis,), tuple(sources), [layer], shape)
        else:
            unit = Unit(layer.type, (p, layer.fixed), tuple(sources), [layer], shape)
        index = self._add(unit)
        if unit.kind != "conv":
            unit.open = False
            self._intern(index)
        for top in layer.tops:
            producer[top] = index

    def _flattens(self, source: int, shape: tuple[int, ...]) -> bool:
        """A Flatten/Reshape to (N, everything else): what InnerProduct does to its input."""
        before = self.units[source].shape
        return len(shape) == 2 and len(before) >= 2 and shape == (before[0], math.prod(before[1:]))

    @staticmethod
    def _pool_key(p: ir.PoolingParam, before: tuple[int, ...]) -> tuple:
        size = tuple(before[2:])
        if p.global_pooling or (p.kernel == size and p.pad == (0, 0)):
            return ("global", p.pool)
        return (p.pool, p.kernel, p.stride, p.pad, p.round_mode)

    def finish(self) -> None:
        for index in range(len(self.units)):
            self._close(index)


def _describe(unit: Unit, units: list[Unit]) -> str:
    name = unit.layers[0].name if unit.layers else "the input"
    if unit.kind == "conv":
        kernel, stride, pad, dilation, group, outputs, _ = unit.key
        c_in = units[unit.inputs[0]].shape[1]
        text = (f"{kernel[0]}x{kernel[1]} convolution, stride {stride[0]}, pad {pad[0]}, "
                f"{c_in} -> {outputs} channels")
        return f"{name!r} ({text}{f', {group} groups' if group > 1 else ''})"
    if unit.kind == "pool":
        if unit.key[0] == "global":
            return f"{name!r} (global {unit.key[1]} pooling)"
        method, kernel, stride, pad, mode = unit.key
        rounding = "rounding down" if mode == "FLOOR" else "rounding up"
        return (f"{name!r} ({method} pooling {kernel[0]}x{kernel[1]}, stride {stride[0]}, pad "
                f"{pad[0]}, {rounding})")
    if unit.kind == "input":
        return f"the input of shape {list(unit.key[0])}"
    if unit.kind == "fc":
        return f"{name!r} (InnerProduct, {unit.key[0]} outputs)"
    return f"{name!r} ({unit.layers[0].type if unit.layers else unit.kind})"


def first_difference(target: Canonical, source: Canonical, name: str) -> str | None:
    """None when both compute the same architecture, else one line naming where they part."""
    if target.units[target.output].id == source.units[source.output].id:
        return None
    source_ids = {u.id for u in source.units}
    target_ids = {u.id for u in target.units}
    for unit in target.units:
        if unit.id in source_ids:
            continue
        inputs = set(unit.inputs)
        matched_inputs = {target.units[i].id for i in inputs}
        there = next((s for s in source.units if s.id not in target_ids and
                      {source.units[i].id for i in s.inputs} == matched_inputs), None)
        hint = ""
        if unit.kind == "input":
            there = next((s for s in source.units if s.kind == "input"), None)
            if there is not None and there.key[0][1:] != unit.key[0][1:]:
                hint = f" (a name ending in -input{there.key[0][-1]} builds for that size)"
        found = (f"the file has {_describe(there, source.units)} there{hint}" if there is not None
                 else "the file has nothing like it there")
        advice = _stem_pool_advice(unit, there, name) or WITHOUT_LIKE
        return (f"not {name}'s architecture: {name} has {_describe(unit, target.units)}; "
                f"{found}{advice}")
    extra = next((s for s in source.units if s.id not in target_ids), None)
    if extra is not None:
        return (f"not {name}'s architecture: the file has {_describe(extra, source.units)} "
                f"where {name} has nothing{WITHOUT_LIKE}")
    return f"not {name}'s architecture: the outputs differ{WITHOUT_LIKE}"


def _stem_pool_advice(unit: Unit, there: Unit | None, name: str) -> str | None:
    """Where NAME's pool1 and the file's differ only in pad (and so rounding) as MSRA's and
    torchvision's stems do: the name with the file's stem pooling, which --like would take."""
    if (there is None or unit.kind != "pool" or there.kind != "pool" or unit.key[0] == "global"
            or there.key[0] == "global" or unit.layers[0].name != "pool1"
            or unit.key[:3] != there.key[:3] or unit.key[:3] != ("MAX", (3, 3), (2, 2))
            or not is_network_name(name)):
        return None
    pads = {pad: pool for pool, (pad, _) in STEM_POOLS.items()}
    pool = pads.get(there.key[3][0]) if there.key[3][0] == there.key[3][1] else None
    try:
        spec = spec_from_name(name)
    except NetgenError:
        return None
    if pool is None or pool == spec.stem_pool or spec.stem_pool is None:
        return None
    pad, rounding = STEM_POOLS[pool]
    return (f": the file pools like {STEM_POOL_OWNER[pool]} stem (pad {pad}, rounding "
            f"{'down' if rounding == 'FLOOR' else 'up'}): use --like "
            f"{replace(spec, stem_pool=pool).name}")


# --------------------------------------------------------------------------- weights


@dataclass
class _Affine:
    """What a conv unit computes per output channel: a * (W x) + b, and the BatchNorm it
    carries if the file kept one: (conv bias, mean, var with factor 1, eps, gamma, beta)."""

    a: np.ndarray
    b: np.ndarray
    bn: tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray] | None = None


def _source_affine(unit: Unit, weights: Weights) -> tuple[np.ndarray, _Affine]:
    conv = unit.layers[0]
    blobs = weights[conv.name]
    channels = conv.param.num_output
    a = np.ones(channels)
    b = blobs[1].astype(np.float64) if conv.param.bias_term else np.zeros(channels)
    bn = None
    chain = unit.layers[1:]
    types = [layer.type for layer in chain]
    if types == ["BatchNorm", "Scale"] and chain[1].param.bias_term:
        mean, var, factor = (np.asarray(x, np.float64) for x in weights[chain[0].name])
        f = 0.0 if factor.reshape(-1)[0] == 0 else 1.0 / factor.reshape(-1)[0]
        gamma, beta = weights[chain[1].name]
        if f == 1.0:
            bn = (b, mean, var, chain[0].param.eps, gamma, beta)
    for layer in chain:
        blobs_l = [np.asarray(x, np.float64) for x in weights[layer.name]]
        if layer.type == "BatchNorm":
            mean, var, factor = blobs_l
            f = 0.0 if factor.reshape(-1)[0] == 0 else 1.0 / factor.reshape(-1)[0]
            inv = 1.0 / np.sqrt(var * f + np.float64(np.float32(layer.param.eps)))
            a, b = a * inv, (b - mean * f) * inv
        elif layer.type == "Scale":
            a, b = a * blobs_l[0], b * blobs_l[0]
            if layer.param.bias_term:
                b = b + blobs_l[1]
        else:  # Bias
            b = b + blobs_l[0]
    return blobs[0], _Affine(a, b, bn)


def _identity_variance(eps: float) -> np.float32:
    """The variance v with float32(v + eps) == 1 exactly: BatchNorm divides by sqrt(1) = 1."""
    e = np.float32(eps)
    v = np.float32(1) - e
    while np.float32(v + e) != np.float32(1):
        v = np.nextafter(v, np.float32(2) if v + e < 1 else np.float32(0))
    return v


def _target_conv(unit: Unit, weight: np.ndarray, affine: _Affine, out: Weights) -> str:
    """Fill one conv unit of the target; says how: "kept", "unfolded", "folded", "plain"."""
    conv = unit.layers[0]
    chain = unit.layers[1:]
    types = [layer.type for layer in chain]
    channels = conv.param.num_output
    zeros = np.zeros(channels, np.float32)
    f32 = np.float32
    if types == ["BatchNorm", "Scale"] and chain[1].param.bias_term:
        bn, scale = chain
        eps = bn.param.eps
        kept = affine.bn
        if kept is not None:
            bias, mean, var, source_eps, gamma, beta = kept
            var_t = var + np.float64(np.float32(source_eps)) - np.float64(np.float32(eps))
            if np.all(var_t > 0):
                # The file's own statistics; a conv bias stays one where NAME has it, else
                # moves into the mean (BN(Wx + c) with mean m is BN(Wx) with mean m - c).
                if conv.param.bias_term:
                    out[conv.name] = [np.asarray(weight, f32), bias.astype(f32)]
                else:
                    out[conv.name] = [np.asarray(weight, f32)]
                    mean = mean - bias
                out[bn.name] = [mean.astype(f32), var_t.astype(f32), np.ones(1, f32)]
                out[scale.name] = [np.asarray(gamma, f32), np.asarray(beta, f32)]
                return "kept"
        out[conv.name] = [np.asarray(weight, f32)] + ([zeros] if conv.param.bias_term else [])
        out[bn.name] = [zeros, np.full(channels, _identity_variance(eps), f32), np.ones(1, f32)]
        out[scale.name] = [affine.a.astype(f32), affine.b.astype(f32)]
        return "unfolded"
    if not chain:
        if conv.param.bias_term:
            out[conv.name] = [(weight * affine.a[:, None, None, None]).astype(f32),
                              affine.b.astype(f32)]
            return "folded"
        if np.all(affine.a == 1) and np.all(affine.b == 0):
            out[conv.name] = [np.asarray(weight, f32)]
            return "plain"
    raise NetgenError(f"layer {conv.name!r}: cannot carry a scale and shift into its "
                      f"{' + '.join(['Convolution'] + types)}")


def map_weights(target: Canonical, source: Canonical,
                weights: Weights) -> tuple[Weights, dict[str, int]]:
    """The target graph's weights, unit by unit from the source's equal units, and how many
    convolutions were filled each way (see _target_conv)."""
    ways: dict[str, int] = {}
    by_id: dict[int, list[Unit]] = {}
    for unit in source.units:
        by_id.setdefault(unit.id, []).append(unit)
    taken: dict[int, int] = {}
    out: Weights = {}
    for unit in target.units:
        if not any(layer.blob_shapes for layer in unit.layers):
            continue
        candidates = by_id.get(unit.id, [])
        k = taken.get(unit.id, 0)
        if k >= len(candidates):
            raise NetgenError(f"layer {unit.layers[0].name!r}: no layer of the file to take "
                              "its weights from")
        taken[unit.id] = k + 1
        match = candidates[k]
        if unit.kind == "conv":
            weight, affine = _source_affine(match, weights)
            way = _target_conv(unit, weight, affine, out)
            ways[way] = ways.get(way, 0) + 1
        elif unit.kind == "fc":
            fc = unit.layers[0]
            blobs = weights[match.layers[0].name]
            bias = blobs[1] if len(blobs) > 1 else np.zeros(fc.param.num_output, np.float32)
            if not fc.param.bias_term and np.any(bias):
                raise NetgenError(f"layer {fc.name!r}: has no bias, the file's "
                                  f"{match.layers[0].name!r} has one")
            out[fc.name] = [np.asarray(blobs[0], np.float32)] + (
                [np.asarray(bias, np.float32)] if fc.param.bias_term else [])
        else:
            for layer, other in zip(unit.layers, match.layers):
                out[layer.name] = [np.asarray(b, np.float32) for b in weights[other.name]]
    for layer in target.graph.layers:
        for blob, shape in zip(out.get(layer.name, []), layer.blob_shapes):
            if tuple(blob.shape) != tuple(shape):
                raise NetgenError(f"layer {layer.name!r}: a weight of shape {list(blob.shape)} "
                                  f"where the layer needs {list(shape)}")
    return out, ways


def like(graph: ir.Graph, weights: Weights, target: ir.Graph,
         name: str) -> tuple[Weights, dict[str, int]]:
    """`graph`'s weights on `target` (the build of `name`) and how its convolutions were
    filled, or a NetgenError naming the first architectural difference."""
    table: dict[tuple, int] = {}
    built = Canonical(target, table)
    built.finish()
    read = Canonical(graph, table)
    read.finish()
    difference = first_difference(built, read, name)
    if difference is not None:
        raise NetgenError(difference)
    return map_weights(built, read, weights)


def write_folder(out: Path, files: dict[str, bytes], force: bool) -> None:
    """All of `files` into `out` or none: a new folder is staged and renamed into place, an
    existing one (with force) gets netgen's journaled commit, as `build` writes."""
    from netgen.storage import commit

    commit.write_folder(out, files, LIKE_FILES)


def check_folder(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NetgenError(f"{out} is a file; --like writes a folder (deploy.prototxt, "
                          "model.caffemodel, model.onnx)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise NetgenError(f"output folder {out} already exists and is not empty; use --force "
                          "to overwrite its netgen files")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NetgenError(f"cannot create {out}: {probe} is a file")
