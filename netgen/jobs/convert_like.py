"""`netgen convert MODEL.onnx --like NAME -o DIR`: a file's weights on the network netgen
builds for NAME.

Both graphs are read as netgen.analysis's interned units (the canonical form diff uses: a
convolution with the per-channel affine maps after it, folded or not, a pooling, ReLU, a
sum, an fc ...): the two networks are the same architecture when their outputs get the
same id, and the first unit of NAME's net without an equal in the file is the reported
difference. Weights then go unit to unit: a folded BatchNorm becomes BatchNorm statistics
that are exactly the identity in float32 (mean 0, variance 1 - eps, moving-average factor
1) and the folded scale and shift in the Scale layer; a BatchNorm kept in the file keeps its
statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from netgen.analysis import units
from netgen.analysis.units import Unit, Units
from netgen.arch import ir
from netgen.arch.spec import STEM_POOL_OWNER, STEM_POOLS, is_network_name, spec_from_name
from netgen.arch.weights import Weights
from netgen.errors import NetgenError

WITHOUT_LIKE = " (without --like, convert writes the file's own network)"
LIKE_FILES = ("deploy.prototxt", "model.caffemodel", "model.onnx", "model.onnx.data")


def first_difference(target: Units, source: Units, name: str) -> str | None:
    """None when both compute the same architecture, else one line naming where they part."""
    difference = units.first_difference(target, source, name)
    if difference is None:
        return None
    advice = WITHOUT_LIKE
    if difference.target is not None:
        advice = _stem_pool_advice(difference.target, difference.source, name) or WITHOUT_LIKE
    return f"not {name}'s architecture: {difference.text}{advice}"


def _stem_pool_advice(unit: Unit, there: Unit | None, name: str) -> str | None:
    """Where NAME's pool1 and the file's differ only in pad (and so rounding) as MSRA's and
    torchvision's stems do: the name with the file's stem pooling, which --like would take."""
    if there is None or unit.kind != "Pool" or there.kind != "Pool" or not unit.layers:
        return None
    mine, theirs = unit.op.attrs, there.op.attrs
    if (mine.get("global") or theirs.get("global") or unit.layers[0].name != "pool1"
            or (mine["pool"], mine["kernel"], mine["stride"]) != (theirs["pool"], theirs["kernel"],
                                                                  theirs["stride"])
            or (mine["pool"], mine["kernel"], mine["stride"]) != ("MAX", [3, 3], [2, 2])
            or not is_network_name(name)):
        return None
    pads = {pad: pool for pool, (pad, _) in STEM_POOLS.items()}
    pool = pads.get(theirs["pad"][0]) if theirs["pad"][0] == theirs["pad"][1] else None
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


def _target_fc(unit: Unit, weight: np.ndarray, affine: _Affine, out: Weights) -> None:
    """Fill one fc unit of the target: the fc, and the BatchNorm + Scale after it where the
    target has them (an IResNet's embedding, BatchNorm1d). The file's BatchNorm is kept where
    it has one; a BatchNorm folded into the fc (the dynamo exporter's Gemm) stays in the fc's
    weight and bias, and the target's BatchNorm and Scale compute the identity (their gamma
    1, as insightface fixes it)."""
    fc = unit.layers[0]
    chain = unit.layers[1:]
    types = [layer.type for layer in chain]
    f32 = np.float32
    n = fc.param.num_output
    if types == ["BatchNorm", "Scale"] and chain[1].param.bias_term:
        bn, scale = chain
        if affine.bn is not None:
            bias, mean, var, source_eps, gamma, beta = affine.bn
            var_t = var + np.float64(np.float32(source_eps)) - np.float64(np.float32(bn.param.eps))
            if np.all(var_t > 0):
                if fc.param.bias_term:
                    out[fc.name] = [np.asarray(weight, f32), np.asarray(bias, f32)]
                else:
                    out[fc.name] = [np.asarray(weight, f32)]
                    mean = mean - bias
                out[bn.name] = [mean.astype(f32), var_t.astype(f32), np.ones(1, f32)]
                out[scale.name] = [np.asarray(gamma, f32), np.asarray(beta, f32)]
                return
        scaled = (np.asarray(weight, np.float64) * affine.a[:, None]).astype(f32)
        beta = np.zeros(n, f32)
        if fc.param.bias_term:
            out[fc.name] = [scaled, affine.b.astype(f32)]
        else:
            out[fc.name] = [scaled]
            beta = affine.b.astype(f32)
        out[bn.name] = [np.zeros(n, f32), np.full(n, _identity_variance(bn.param.eps), f32),
                        np.ones(1, f32)]
        out[scale.name] = [np.ones(n, f32), beta]
        return
    if chain:
        raise NetgenError(f"layer {fc.name!r}: cannot carry a scale and shift into its "
                          f"{' + '.join(['InnerProduct'] + types)}")
    if np.all(affine.a == 1):
        scaled = np.asarray(weight, f32)
    else:
        scaled = (np.asarray(weight, np.float64) * affine.a[:, None]).astype(f32)
    if not fc.param.bias_term and np.any(affine.b):
        raise NetgenError(f"layer {fc.name!r}: has no bias, the file's fc has one")
    out[fc.name] = [scaled] + ([affine.b.astype(f32)] if fc.param.bias_term else [])


def _copy_unit(unit: Unit, match: Unit, weights: Weights, out: Weights,
               orders: tuple, in_orders: tuple) -> None:
    """The parameters of any other unit, layer by layer among those that have some: an SE
    unit's two 1x1 convolutions (or fc layers, reshaped: an fc of C inputs is a 1x1
    convolution), a pre-activation BatchNorm and Scale on the residual stream (their
    per-channel vectors follow its channel order), a convolution and its GroupNorm."""
    mine = [layer for layer in unit.layers if layer.blob_shapes]
    theirs = [layer for layer in match.layers if weights.get(layer.name)]
    if len(mine) != len(theirs):
        raise NetgenError(f"layer {mine[0].name!r}: the file's {match.layers[0].name!r} carries "
                          f"{len(theirs)} parameter layers where it has {len(mine)}")
    what = unit.op.attrs.get("norm", unit.kind)
    if (unit.kind in ("SE", "ECA") or "norm" in unit.op.attrs) \
            and not all(units.is_identity(o) for o in orders + in_orders):
        # an ECA unit's convolution runs across the channels, a GroupNorm's groups take
        # neighbouring channels: a permutation changes them too
        raise NetgenError(f"layer {mine[0].name!r}: a {what} unit on channels in another "
                          "order")
    channels = unit.shape[1] if len(unit.shape) > 1 else 0
    for layer, other in zip(mine, theirs):
        blobs = []
        for blob, shape in zip(weights[other.name], layer.blob_shapes):
            blob = np.asarray(blob)
            if tuple(blob.shape) != tuple(shape) and blob.size == int(np.prod(shape)):
                blob = blob.reshape(shape)
            elif unit.kind not in ("SE", "ECA") and np.ndim(blob) == 1 and len(blob) == channels:
                blob = units.reorder(blob, *orders)
            blobs.append(np.asarray(blob, np.float32))
        out[layer.name] = blobs


def map_weights(target: Units, source: Units,
                weights: Weights) -> tuple[Weights, dict[str, int]]:
    """The target graph's weights, unit by unit from the source's equal units, and how many
    convolutions were filled each way (see _target_conv)."""
    ways: dict[str, int] = {}
    out: Weights = {}
    t_orders, s_orders = units.channel_orders(target), units.channel_orders(source)
    for unit, match in units.matches(target, source):
        # where each channel sits on either side (option A's zeros placed otherwise)
        t_out, s_out = t_orders[unit.op.id], s_orders[match.op.id]
        t_in = t_orders[unit.inputs[0]] if unit.inputs else None
        s_in = s_orders[match.inputs[0]] if match.inputs else None
        if unit.kind == "Conv" and "norm" in unit.op.attrs:
            # a convolution and its GroupNorm (the same on both sides: the units are equal):
            # the convolution's weights and gamma/beta layer by layer
            _copy_unit(unit, match, weights, out, (s_out, t_out), (s_in, t_in))
        elif unit.kind == "Conv":
            weight, affine = _source_affine(match, weights)
            if unit.op.attrs["group"] != 1 and not (units.is_identity(t_in)
                                                    and units.is_identity(s_in)):
                raise NetgenError(f"layer {unit.layers[0].name!r}: a grouped convolution "
                                  "reading channels in another order")
            weight = units.reorder(units.reorder(weight, s_out, t_out, 0), s_in, t_in, 1)
            affine = _Affine(*(units.reorder(v, s_out, t_out) for v in (affine.a, affine.b)),
                             None if affine.bn is None else tuple(
                                 v if np.ndim(v) == 0 else units.reorder(v, s_out, t_out)
                                 for v in affine.bn))
            way = _target_conv(unit, weight, affine, out)
            ways[way] = ways.get(way, 0) + 1
        elif unit.kind == "FC":
            fc = unit.layers[0]
            weight, affine = _source_affine(match, weights)  # the fc, then BN/Scale/Bias
            if not (units.is_identity(t_in) and units.is_identity(s_in)):
                if weight.shape[1] != len(t_in if t_in is not None else s_in):
                    raise NetgenError(f"layer {fc.name!r}: reads a spatial map whose channels "
                                      "are in another order than the file's")
                weight = units.reorder(weight, s_in, t_in, 1)
            _target_fc(unit, weight, affine, out)
        else:
            _copy_unit(unit, match, weights, out, (s_out, t_out), (s_in, t_in))
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
    built, read = units.compare_units(target, graph)
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
