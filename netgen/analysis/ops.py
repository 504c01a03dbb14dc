"""The graph IR as *logical ops*: what a network computes, whoever wrote the file.

Both modes merge BatchNorm + Scale into one `BN`, drop Flatten, Split and Dropout, and name
the constant layers of option A (`Subsample`, `Zeros`). That is `--strict`, today's exact
comparison: every layer the file has is compared.

The canonical form (the default) goes further and drops what is representation, not
architecture, so that a torchvision export and a Caffe deploy file of the same network
compare equal:

- BatchNorm (+Scale, +Bias) right after a convolution is part of that convolution, as an
  exporter's constant folding makes it: the Conv op only records that its output is
  shifted per channel (`shift`), whether by a folded bias or by BatchNorm;
- a conv bias directly before BatchNorm is absorbed by it; so is a BatchNorm right after an
  fc layer (IResNet's BatchNorm1d embedding, folded into the Gemm by the dynamo exporter):
  the fc op records a shift per feature; a bias of zeros (read from a file)
  matches both no bias and a bias;
- a BatchNorm elsewhere is a per-channel affine at inference: its epsilon is not compared,
  and a per-channel Scale on its own (tf2onnx's Mul + Add) is one too;
- a trailing Softmax, and Reshapes that only flatten, are dropped;
- a global pooling, a pooling whose kernel covers the whole map and ONNX's ReduceMean are
  one thing. Any other pooling is compared by method, kernel, stride, output size and the
  padding and rounding that place its windows: torchvision's pool1 (pad 1, rounding down)
  and MSRA's (pad 0, rounding up) give the same 56x56 from other windows, so one set of
  weights computes other numbers through them (netgen's -torchpool names). How a file
  spells floor rounding is not compared: the readers give Caffe's round_mode FLOOR and
  netgen's stock-layer form (Pooling rounding up + Crop) one IR layer, and write FLOOR only
  where it changes the size.

- option A's zero channels are one `Zeros` op however many Slice pieces a file cuts them
  into: PyTorch's F.pad puts them on both sides of the subsampled input, netgen after it,
  and the two are one network up to a fixed permutation of channels (`zeros_before` says
  which Concats do so; convert --like maps weights through the permutation).

What was dropped is counted in `Representation`, so the report can say what it ignored.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from netgen.arch import ir
from netgen.arch.weights import Weights

SKIPPED_TYPES = frozenset({"Dropout", "Flatten", "Split"})
# A bias read from a file as all zeros: equal to no bias and to a bias (compare.py).
ZERO_BIAS = "zeros"
ABSORBED_BY_CONV = frozenset({"BatchNorm", "Scale", "Bias"})


@dataclass
class Op:
    """One logical op: `layers` are the IR layers it stands for, `attrs` what is compared,
    `extra` what is representation (reported, never compared)."""

    id: int
    type: str
    attrs: dict
    layers: list[str]
    inputs: list[int] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.layers[0] if self.layers else f"<{self.type}>"

    def describe(self) -> str:
        return f"{self.type} {'/'.join(self.layers)}" if self.layers else self.type


@dataclass
class Representation:
    """What the canonical form dropped or merged on one side (counts and layer names)."""

    bn_in_conv: int = 0  # BatchNorm layers merged into the convolution before them
    bn_in_fc: list[str] = field(default_factory=list)  # fc layers with a BatchNorm after them
    folded: int = 0  # convolutions with a bias and no BatchNorm after them
    bias_before_bn: list[str] = field(default_factory=list)
    zero_bias: list[str] = field(default_factory=list)
    # option A's Concats that put zero channels before the input too (PyTorch's F.pad)
    zeros_before: list[str] = field(default_factory=list)
    softmax: str | None = None
    flatten: Counter = field(default_factory=Counter)  # skipped layer type -> count
    global_pool: list[tuple[str, str]] = field(default_factory=list)  # (layer, how)
    convs: int = 0

    def to_json(self) -> dict:
        return {"bn_in_conv": self.bn_in_conv, "folded_convs": self.folded,
                "convs": self.convs, "bn_in_fc": self.bn_in_fc,
                "bias_before_bn": self.bias_before_bn,
                "zero_bias": self.zero_bias, "zeros_before": self.zeros_before,
                "softmax": self.softmax,
                "skipped": dict(sorted(self.flatten.items())),
                "global_pool": [list(x) for x in self.global_pool]}


def _conv_attrs(layer: ir.Layer, in_shape: ir.Shape, canonical: bool) -> dict:
    p: ir.ConvolutionParam = layer.param
    attrs = {"kernel": list(p.kernel), "stride": list(p.stride), "pad": list(p.pad),
             "dilation": list(p.dilation), "group": p.group, "in_channels": in_shape[1],
             "out_channels": p.num_output}
    if canonical:
        attrs["shift"] = p.bias_term
    else:
        attrs["bias"] = p.bias_term
        attrs["param_shapes"] = [list(s) for s in layer.blob_shapes]
    return attrs


def _whole_map(layer: ir.Layer, in_shape: ir.Shape) -> bool:
    p: ir.PoolingParam = layer.param
    return (len(in_shape) == 4 and tuple(p.kernel) == tuple(in_shape[2:]) and p.pad == (0, 0)
            and layer.top_shapes[0][2:] == (1, 1))


def _pool_attrs(layer: ir.Layer, in_shape: ir.Shape, canonical: bool) -> tuple[dict, dict]:
    p: ir.PoolingParam = layer.param
    round_mode = getattr(p, "round_mode", "CEIL")
    if p.global_pooling or _whole_map(layer, in_shape):
        return {"pool": p.pool, "global": True}, {}
    if not canonical:
        attrs = {"pool": p.pool, "kernel": list(p.kernel), "stride": list(p.stride),
                 "pad": list(p.pad)}
        if round_mode != "CEIL":
            attrs["round_mode"] = round_mode
        return attrs, {}
    attrs = {"pool": p.pool, "kernel": list(p.kernel), "stride": list(p.stride),
             "pad": list(p.pad), "round_mode": round_mode, "out": list(layer.top_shapes[0][2:])}
    return attrs, {}


def _is_zero(weights: Weights | None, name: str, index: int) -> bool:
    if weights is None or name not in weights or len(weights[name]) <= index:
        return False
    return not np.any(weights[name][index])


def logical_ops(graph: ir.Graph, canonical: bool = False, weights: Weights | None = None
                ) -> tuple[list[Op], list[int], Representation]:
    """The logical op graph of `graph` (topological order), the ids of its input ops and
    what the canonical form dropped. `weights` (only when they are data, read from a file)
    let a bias of zeros count as none."""
    ops: list[Op] = []
    producer: dict[str, int] = {}  # blob -> logical op
    shape_of: dict[str, ir.Shape] = {}
    rep = Representation()
    inputs = []
    for blob in graph.inputs:
        op = Op(len(ops), "Input", {"shape": list(blob.shape)}, [blob.name], shape=blob.shape)
        ops.append(op)
        inputs.append(op.id)
        producer[blob.name] = op.id
        shape_of[blob.name] = blob.shape
    # How many layers read each layer's output: a BatchNorm is part of the conv before it
    # only where nothing else reads the conv's output.
    readers: Counter = Counter()
    writer: dict[str, int] = {}
    for index, layer in enumerate(graph.layers):
        for bottom in layer.bottoms:
            readers[writer.get(bottom, -1)] += 1
        for top in layer.tops:
            writer[top] = index
    writer.clear()
    for index, layer in enumerate(graph.layers):
        in_shape = shape_of[layer.bottoms[0]]
        sources = [producer[b] for b in layer.bottoms]
        first = ops[sources[0]]
        sole_reader = len(layer.bottoms) == 1 and readers[writer.get(layer.bottoms[0], -1)] == 1
        if layer.type in SKIPPED_TYPES:
            op_id = first.id  # its tops stand for its bottom
            rep.flatten[layer.type] += 1
        elif canonical and layer.type == "Reshape" and _flattens(in_shape, layer.top_shapes[0]):
            op_id = first.id
            rep.flatten["Reshape"] += 1
        elif canonical and layer.type == "Slice" and first.type == "Zeros":
            # pieces of a block of zeros (option A's zeros on both sides): zeros still
            op_id = first.id
            first.layers.append(layer.name)
        elif (canonical and layer.type in ABSORBED_BY_CONV and first.type == "Conv"
              and sole_reader and _per_channel(layer, in_shape)):
            if layer.type == "BatchNorm":
                rep.bn_in_conv += 1
                first.extra["bn"] = True
                if first.extra.get("bias"):
                    rep.bias_before_bn.append(first.name)
            shifts = layer.type != "Scale" or layer.param.bias_term
            first.attrs["shift"] = True if shifts else first.attrs["shift"]
            first.layers.append(layer.name)
            op_id = first.id
        elif (canonical and layer.type in ABSORBED_BY_CONV and first.type == "FC" and sole_reader
              and _per_channel(layer, in_shape)):
            # a bias, or a BatchNorm(+Scale) of the fc's features (IResNet's BatchNorm1d,
            # which the dynamo exporter folds into the Gemm): the fc with a shift per feature
            if layer.type == "BatchNorm":
                first.extra["bn"] = True
                rep.bn_in_fc.append(first.name)
            if layer.type != "Scale" or layer.param.bias_term:
                first.attrs["bias"] = True
            first.layers.append(layer.name)
            op_id = first.id
        elif layer.type == "Scale" and first.type == "BN" and not first.attrs["affine"]:
            first.attrs["affine"] = True
            first.attrs["shift"] = layer.param.bias_term
            first.layers.append(layer.name)
            op_id = first.id
        else:
            kind, attrs, extra = _classify(layer, in_shape, canonical)
            op_id = len(ops)
            op = Op(op_id, kind, attrs, [layer.name], sources, layer.top_shapes[0], extra)
            if canonical and kind == "Conv":
                rep.convs += 1
                op.extra["bias"] = layer.param.bias_term
                if layer.param.bias_term and _is_zero(weights, layer.name, 1):
                    attrs["shift"] = ZERO_BIAS
                    op.extra["bias"] = False
                    rep.zero_bias.append(layer.name)
            elif canonical and kind == "FC" and attrs["bias"] and _is_zero(weights, layer.name, 1):
                attrs["bias"] = ZERO_BIAS
                rep.zero_bias.append(layer.name)
            elif canonical and kind == "Concat" and _zeros_first(ops, sources):
                rep.zeros_before.append(layer.name)
            elif canonical and kind == "Pool" and attrs.get("global"):
                how = "global_pooling" if layer.param.global_pooling else "whole-map kernel"
                rep.global_pool.append((layer.name, how))
            ops.append(op)
        for top, shape in zip(layer.tops, layer.top_shapes):
            producer[top] = op_id
            shape_of[top] = shape
            writer[top] = index
    ops = _fold_units(_fold_split_attention(_fold_sk(_fold_se(ops, rep), rep), rep),
                      canonical)
    if canonical:
        for op in ops:
            if op.type == "Conv" and op.extra.get("bias") and not op.extra.get("bn"):
                rep.folded += 1
        if len(ops) > 1 and ops[-1].type == "Softmax":
            rep.softmax = ops[-1].name
            ops.pop()
    return ops, inputs, rep


SE_GATE = ("Sigmoid", "Conv|FC", "ReLU", "Conv|FC")  # walked back from the gate


def _se_chain(ops: list[Op], gate: int, x: int) -> list[int] | None:
    """The ids of a squeeze-and-excitation gate computed from `x` (global average pooling,
    a reduction, ReLU, an expansion, Sigmoid; 1x1 convolutions or fc layers, with the
    reshapes an fc needs), first to last, or None."""
    chain, cur = [], gate
    for want in SE_GATE:
        while ops[cur].type == "Reshape" and ops[cur].inputs:
            chain.append(cur)
            cur = ops[cur].inputs[0]
        if ops[cur].type not in want.split("|") or len(ops[cur].inputs) != 1:
            return None
        chain.append(cur)
        cur = ops[cur].inputs[0]
    while ops[cur].type == "Reshape" and ops[cur].inputs:
        chain.append(cur)
        cur = ops[cur].inputs[0]
    pool = ops[cur]
    if pool.type != "Pool" or not pool.attrs.get("global") or pool.attrs["pool"] != "AVE" \
            or pool.inputs != [x]:
        return None
    chain.append(cur)
    return chain[::-1]


def _eca_chain(ops: list[Op], gate: int, x: int) -> tuple[list[int], int] | None:
    """The ids of an ECA gate computed from `x` (global average pooling, a reshape that lays
    the channels along one axis, a convolution of one input and one output channel with a
    1 x k or k x 1 kernel and pad k // 2 there, no bias, Sigmoid, a reshape back), first to
    last, and k; or None."""
    chain, cur = [], gate
    while ops[cur].type == "Reshape" and ops[cur].inputs:
        chain.append(cur)
        cur = ops[cur].inputs[0]
    if ops[cur].type != "Sigmoid" or len(ops[cur].inputs) != 1:
        return None
    chain.append(cur)
    cur = ops[cur].inputs[0]
    conv = ops[cur]
    if conv.type != "Conv" or len(conv.inputs) != 1:
        return None
    a = conv.attrs
    kernel = sorted(a["kernel"])
    if (a["in_channels"], a["out_channels"], a["group"]) != (1, 1, 1) or kernel[0] != 1 \
            or kernel[1] % 2 == 0 or sorted(a["pad"]) != [0, kernel[1] // 2] \
            or a["stride"] != [1, 1] or a["dilation"] != [1, 1] \
            or a.get("shift", a.get("bias")):
        return None
    chain.append(cur)
    cur = conv.inputs[0]
    seen = 0
    while ops[cur].type == "Reshape" and ops[cur].inputs:
        chain.append(cur)
        cur = ops[cur].inputs[0]
        seen += 1
    pool = ops[cur]
    if not seen or pool.type != "Pool" or not pool.attrs.get("global") \
            or pool.attrs["pool"] != "AVE" or pool.inputs != [x]:
        return None
    chain.append(cur)
    return chain[::-1], kernel[1]


def _fold_se(ops: list[Op], rep: Representation) -> list[Op]:
    """Each squeeze-and-excitation unit as one `SE` op (channels, reduced width) on the
    residual branch, and its product-and-sum (SENet's Axpy, or Mul then Add) as the block's
    Add: so that an SE block is the plain block with one more op, whichever way it is
    written. timm's ECA unit likewise becomes one `ECA` op (channels, kernel k)."""
    drop: set[int] = set()
    se_of: dict[int, Op] = {}
    for op in ops:
        if op.type != "Axpy" or len(op.inputs) != 3:
            continue
        gate, x, shortcut = op.inputs
        channels = ops[x].shape[1] if len(ops[x].shape) > 1 else 0
        chain = _se_chain(ops, gate, x)
        if chain is not None:
            down = next(ops[i] for i in chain if ops[i].type in ("Conv", "FC"))
            reduced = down.attrs.get("out_channels", down.attrs.get("out_features"))
            kind, attrs = "SE", {"channels": channels, "reduced": reduced}
        else:
            found = _eca_chain(ops, gate, x)
            if found is None:
                continue
            chain, kernel = found
            kind, attrs = "ECA", {"channels": channels, "k": kernel}
        se = Op(chain[0], kind, attrs,
                [name for i in chain for name in ops[i].layers], [x], tuple(ops[x].shape))
        se_of[chain[0]] = se
        drop.update(chain[1:])
        op.type, op.attrs, op.inputs = "Add", {"inputs": 2}, [chain[0], shortcut]
        _forget_pools(rep, ops[chain[0]].layers)
    return _replaced(ops, se_of, drop)


def _forget_pools(rep: Representation, layers: list[str]) -> None:
    """A unit's global pooling is inside its one op: not a spelling of the head's pool5 for
    the representation notes to report."""
    inside = set(layers)
    rep.global_pool = [(name, how) for name, how in rep.global_pool if name not in inside]


def _replaced(ops: list[Op], new: dict[int, Op], drop: set[int]) -> list[Op]:
    """`ops` with the ops of `new` in place of those ids and the ids of `drop` left out,
    renumbered (ids are list positions)."""
    if not new and not drop:
        return ops
    renumber: dict[int, int] = {}
    kept: list[Op] = []
    for op in ops:
        if op.id in drop:
            continue
        op = new.get(op.id, op)
        renumber[op.id] = len(kept)
        kept.append(op)
    for op in kept:
        op.id = renumber[op.id]
        op.inputs = [renumber[i] for i in op.inputs]
    return kept


def _readers(ops: list[Op]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for op in ops:
        for i in dict.fromkeys(op.inputs):
            out.setdefault(i, []).append(op.id)
    return out


def _only_reader(ops: list[Op], readers: dict[int, list[int]], op_id: int,
                 kind: str) -> Op | None:
    found = readers.get(op_id, [])
    return ops[found[0]] if len(found) == 1 and ops[found[0]].type == kind else None


def _group_norm(ops: list[Op], readers: dict[int, list[int]], mvn: Op) -> list[int] | None:
    """The ids of a GroupNorm as netgen.onnx.normalize.groupnorm writes it, first to last:
    [Reshape to N x G x L x 1], MVN (mean only), Mul of it by itself, global average
    pooling, Power (power -0.5: (var + eps) ** -0.5), the Scale of the MVN by that, [Reshape
    back], and the per-channel affine after it where it is the one reader; or None."""
    if mvn.attrs.get("normalize_variance", True) or len(mvn.inputs) != 1:
        return None
    users = {ops[i].type: ops[i] for i in readers.get(mvn.id, [])}
    square, scale = users.get("Mul"), users.get("Scale")
    if len(readers.get(mvn.id, [])) != 2 or square is None or scale is None \
            or square.inputs != [mvn.id, mvn.id]:
        return None
    pool = _only_reader(ops, readers, square.id, "Pool")
    power = pool and _only_reader(ops, readers, pool.id, "Power")
    if pool is None or not pool.attrs.get("global") or pool.attrs["pool"] != "AVE" \
            or power is None or (power.attrs["power"], power.attrs["scale"]) != (-0.5, 1.0):
        return None
    factor = [power.id]  # and the reshapes of it to N x G x 1 x 1 (netgen's ONNX of it)
    while (reshape := _only_reader(ops, readers, factor[-1], "Reshape")) is not None:
        factor.append(reshape.id)
    if sorted(scale.inputs) != sorted([mvn.id, factor[-1]]):
        return None
    chain = [mvn.id, square.id, pool.id, *factor, scale.id]
    before = ops[mvn.inputs[0]]
    if before.type == "Reshape" and len(readers.get(before.id, [])) == 1:
        after = _only_reader(ops, readers, scale.id, "Reshape")
        if after is None or tuple(after.shape) != tuple(ops[before.inputs[0]].shape):
            return None
        chain = [before.id] + chain + [after.id]
    after = readers.get(chain[-1], [])
    affine = ops[after[0]] if len(after) == 1 else None
    if affine is not None and len(affine.inputs) == 1 and (
            (affine.type == "BN" and affine.attrs.get("affine"))  # canonical
            or (affine.type == "Scale" and affine.attrs["channels"] == ops[chain[-1]].shape[1])):
        chain.append(affine.id)
    return chain


def _copy_pad(ops: list[Op], readers: dict[int, list[int]], op: Op) -> list[int] | None:
    """The ids of a pad of W and/or H written as Slice + Concat (netgen.onnx.reader's
    reflect, edge and wrap pads): a Slice along an axis whose pieces (some twice) only a
    Concat along that axis reads, once or for W then H; or None."""
    chain: list[int] = []
    current = op
    for _ in range(2):
        if current is None or current.type != "Slice" or current.attrs["axis"] not in (2, 3):
            break
        concat = _only_reader(ops, readers, current.id, "Concat")
        if concat is None or concat.attrs["axis"] != current.attrs["axis"] \
                or set(concat.inputs) != {current.id}:
            break
        chain += [current.id, concat.id]
        following = readers.get(concat.id, [])
        current = ops[following[0]] if len(following) == 1 else None
        if current is not None and current.attrs.get("axis") == ops[chain[0]].attrs["axis"]:
            break
    return chain or None


def _fold_units(ops: list[Op], canonical: bool) -> list[Op]:
    """A GroupNorm (netgen's stock-layer form) as one `GroupNorm` op (groups, channels,
    whether it has gamma/beta), and a reflect pad's Slices and Concats as one `Pad` op (the
    amount added to H and W), so that the topology sees a normalisation and a padding where
    the file writes eleven and four layers. The canonical form puts a GroupNorm that alone
    reads a convolution into it, as it does BatchNorm: the Conv op's `norm` says which
    (`GroupNorm 32`; absent for BatchNorm or none), so blocks, shortcuts and stems keep
    their shape and the norm is one difference of its own."""
    readers = _readers(ops)
    merged: dict[int, Op] = {}
    drop: set[int] = set()
    for op in ops:
        if op.id in drop:
            continue
        if op.type == "MVN":
            chain = _group_norm(ops, readers, op)
            if chain is None:
                continue
            first, last = ops[chain[0]], ops[chain[-1]]
            x = ops[first.inputs[0]]
            power = next(ops[i] for i in chain if ops[i].type == "Power")
            groups = ops[chain[1]].shape[1] if first.type == "Reshape" else x.shape[1]
            affine = last.type in ("BN", "Scale")
            attrs = {"groups": groups, "channels": x.shape[1], "affine": affine,
                     "shift": affine and bool(last.attrs.get("shift", last.attrs.get("bias")))}
            new = Op(chain[0], "GroupNorm", attrs, [n for i in chain for n in ops[i].layers],
                     [x.id], tuple(x.shape), {"eps": power.attrs["shift"]})
            if canonical and x.type == "Conv" and readers.get(x.id) == [chain[0]]:
                x.attrs["norm"] = f"GroupNorm {groups}"
                x.attrs["shift"] = attrs["shift"] or x.attrs["shift"]
                x.extra["norm"] = True
                x.layers += new.layers
                drop.update(chain)
                _reread(ops, readers, chain, x.id)
                continue
        elif op.type == "Slice":
            chain = _copy_pad(ops, readers, op)
            if chain is None:
                continue
            x = ops[op.inputs[0]]
            out = ops[chain[-1]].shape
            pads = [out[2] - x.shape[2], out[3] - x.shape[3]]
            attrs = {"pads": pads}
            blur = _only_reader(ops, readers, chain[-1], "Conv")
            kind = "Pad"
            if blur is not None and _blurs(blur.attrs, x.shape[1]):
                # timm's BlurPool: a (reflect) pad, then a fixed depthwise filter of stride s
                kind = "BlurPool"
                attrs.update(kernel=blur.attrs["kernel"], stride=blur.attrs["stride"],
                             channels=x.shape[1])
                chain.append(blur.id)
                out = blur.shape
            new = Op(chain[0], kind, attrs, [n for i in chain for n in ops[i].layers],
                     [x.id], tuple(out))
        else:
            continue
        merged[chain[0]] = new
        drop.update(chain[1:])
        _reread(ops, readers, chain, chain[0])
    return _replaced(ops, merged, drop)


def _blurs(conv: dict, channels: int) -> bool:
    """A depthwise convolution without padding or bias: a blur pool's filter."""
    return (conv["group"] == conv["in_channels"] == conv["out_channels"] == channels
            and conv["pad"] == [0, 0] and conv["dilation"] == [1, 1]
            and not conv.get("shift", conv.get("bias")))


def _reread(ops: list[Op], readers: dict[int, list[int]], chain: list[int], to: int) -> None:
    """The readers of the chain's last op, outside the chain, read op `to` instead."""
    for reader in readers.get(chain[-1], []):
        if reader not in chain:
            ops[reader].inputs = [to if j == chain[-1] else j for j in ops[reader].inputs]


# The ops of one path of a selective-kernel unit (ConvNormAct: a convolution, BatchNorm
# folded or not, ReLU).
SK_PATH = frozenset({"Conv", "BN", "ReLU"})


def _walk(ops: list[Op], start: int, through: frozenset[str] | None = None) -> list[int]:
    """`start` and the single-input ops before it, last to first: while their type is in
    `through` (any type where None) and they have one input."""
    chain, cur = [], start
    while len(ops[cur].inputs) == 1 and (through is None or ops[cur].type in through):
        chain.append(cur)
        cur = ops[cur].inputs[0]
    return chain


def _weighted_sum(ops: list[Op], last: Op) -> tuple[list[tuple[int, int]], set[int]] | None:
    """The (gate, x) pairs, in order, of a sum of gate products ending in `last`, and the ids
    of its products and sums; or None. The ONNX import and the Caffe reader write one as a
    chain of Axpy(gate_i, x_i, sum so far) down to a two-bottom Scale (x_0 times gate_0)."""
    pairs, unit, cur = [], {last.id}, last
    while cur.type == "Axpy" and len(cur.inputs) == 3:
        pairs.append((cur.inputs[0], cur.inputs[1]))
        cur = ops[cur.inputs[2]]
        unit.add(cur.id)
    if not pairs or cur.type != "Scale" or len(cur.inputs) != 2:
        return None
    pairs.append((cur.inputs[1], cur.inputs[0]))
    pairs.reverse()
    return pairs, unit


def _sk_unit(ops: list[Op], last: Op) -> tuple[set[int], Op] | None:
    """The ids of the selective-kernel unit (timm's SelectiveKernel, as the ONNX importer and
    the Caffe reader give it) whose weighted sum `last` is, and its one op; or None. The
    weighted sum is a chain of Axpy(gate_i, path_i, sum so far) down to a two-bottom Scale
    (path_0 times gate_0); the gates are the N x C x 1 x 1 views of the pieces of one Slice
    of a Softmax over axis 1 of the attention viewed as N x P x C x 1; the attention is
    computed from the global average pooling of the Add of the paths; each path is
    convolutions, BatchNorms and ReLUs from one source (a Slice of the unit's input:
    timm's split_input, or the input itself)."""
    found = _weighted_sum(ops, last)
    if found is None:
        return None
    pairs, unit = found
    slices = set()
    for gate, _ in pairs:
        if ops[gate].type != "Reshape" or len(ops[gate].inputs) != 1:
            return None
        unit.add(gate)
        slices.add(ops[gate].inputs[0])
    if len(slices) != 1:
        return None
    split = ops[slices.pop()]
    p = len(pairs)
    if split.type != "Slice" or split.attrs != {"axis": 1, "tops": p} or len(split.inputs) != 1:
        return None
    softmax = ops[split.inputs[0]]
    if softmax.type != "Softmax" or softmax.attrs.get("axis") != 1 or len(softmax.inputs) != 1:
        return None
    attention = _walk(ops, softmax.inputs[0])
    if not attention or ops[attention[0]].type != "Reshape":
        return None
    pool = ops[attention.pop()]
    paths = [x for _, x in pairs]
    if pool.type != "Pool" or not pool.attrs.get("global") \
            or pool.attrs["pool"] != "AVE" or len(pool.inputs) != 1:
        return None
    total = ops[pool.inputs[0]]
    if total.type != "Add" or sorted(total.inputs) != sorted(paths):
        return None
    fcs = [ops[i] for i in reversed(attention) if ops[i].type in ("Conv", "FC")]
    unit.update([split.id, softmax.id, pool.id, total.id, *attention])
    chains = [_walk(ops, x, SK_PATH) for x in paths]
    if any(not chain or ops[chain[-1]].type != "Conv" for chain in chains):
        return None
    sources = {ops[chain[-1]].inputs[0] for chain in chains}
    if len(sources) != 1:
        return None
    source = ops[sources.pop()]
    split_input = source.type == "Slice" and source.attrs == {"axis": 1, "tops": p}
    if split_input:
        unit.add(source.id)
        source = ops[source.inputs[0]]
    for chain in chains:
        unit.update(chain)
    convs = [ops[chain[-1]] for chain in chains]
    c = last.shape[1] if len(last.shape) > 1 else 0
    first = convs[0].attrs
    attrs = {"kernel": first["kernel"], "stride": first["stride"], "group": first["group"],
             "in_channels": source.shape[1] if len(source.shape) > 1 else 0,
             "out_channels": c, "split": split_input,
             "paths": [[*conv.attrs["kernel"], conv.attrs["dilation"][0], conv.attrs["group"]]
                       for conv in convs],
             "reduced": fcs[0].attrs.get("out_channels", fcs[0].attrs.get("out_features"))
             if fcs else None}
    names = [name for i in sorted(unit) for name in ops[i].layers]
    return unit, Op(last.id, "SK", attrs, names, [source.id], tuple(last.shape))


def sk_text(attrs: dict) -> str:
    """'SK 2 branches (3x3, 3x3 dilation 2)': a selective-kernel unit as diff and draw name it."""
    shown = []
    for kh, kw, dilation, group in attrs["paths"]:
        text = f"{kh}x{kw}" + (f" dilation {dilation}" if dilation != 1 else "")
        shown.append(text + (f" {group} groups" if group != 1 else ""))
    return f"SK {len(attrs['paths'])} branches ({', '.join(shown)})"


def _fold_sk(ops: list[Op], rep: Representation) -> list[Op]:
    """Each selective-kernel unit as one `SK` op in the place of the convolution it stands
    for (its paths, attention and weighted sum), reading the unit's input: so that an SK
    block is the plain block with its first 3x3 replaced, whichever way it is written."""
    drop: set[int] = set()
    sk_of: dict[int, Op] = {}
    for op in ops:
        if op.type != "Axpy" or op.id in drop:
            continue
        found = _sk_unit(ops, op)
        if found is None:
            continue
        unit, sk = found
        sk_of[op.id] = sk
        drop.update(unit - {op.id})
        _forget_pools(rep, [name for i in unit for name in ops[i].layers])
    return _replaced(ops, sk_of, drop)


# The attention of a split-attention unit, walked back from the gates' Slice.
SPLIT_GATE = ("Reshape", "Softmax", "Reshape", "Conv", "ReLU", "Conv", "Pool", "Add")


def _split_attention(ops: list[Op], total: Op) -> tuple[list[int], dict, Op] | None:
    """The ids of the split-attention unit (timm's SplitAttn, as netgen's ONNX import writes
    it) whose sum of gated radix parts is `total`: all but `total` and the convolution's
    output it reads, in order; its attributes and its pooling; or None. The unit: a Slice
    of x into R radix parts; their sum, global average pooling, fc1 (1x1 conv), ReLU, fc2;
    a Reshape to (card, R, C'), Softmax over R, a Reshape back and a Slice into the gates
    (Concats of a gate's cardinality pieces); the radix parts times their gates, summed
    (`_weighted_sum`)."""
    found = _weighted_sum(ops, total)
    if found is None:
        return None
    pairs, sums = found
    parts = {x for _, x in pairs}
    gates = [ops[gate] for gate, _ in pairs]
    joins = [g.id for g in gates if g.type == "Concat"]
    pieces = {i for g in gates for i in (g.inputs if g.type == "Concat" else [g.id])}
    if len(parts) != 1 or len(pieces) != 1 or len(joins) not in (0, len(gates)):
        return None
    part = ops[parts.pop()]
    if part.type != "Slice" or len(part.inputs) != 1:
        return None
    chain, cur = [part.id, *(sums - {total.id}), *set(joins)], pieces.pop()
    if ops[cur].type != "Slice":
        return None
    chain.append(cur)
    cur = ops[cur].inputs[0]
    for want in SPLIT_GATE:
        op = ops[cur]
        if op.type != want:
            return None
        chain.append(cur)
        if want == "Add":
            if set(op.inputs) != {part.id}:
                return None
            break
        if len(op.inputs) != 1:
            return None
        cur = op.inputs[0]
    softmax, view, fc1, pool = (ops[chain[-7]], ops[chain[-6]], ops[chain[-3]], ops[chain[-2]])
    if len(view.attrs["out_shape"]) != 3 or softmax.attrs["axis"] != 2 \
            or not pool.attrs.get("global") or pool.attrs["pool"] != "AVE":
        return None
    card, radix, _ = view.attrs["out_shape"]
    if radix != len(pairs) or len(joins) not in (0, radix) or (card > 1) != bool(joins):
        return None
    attrs = {"channels": total.shape[1], "radix": radix, "cardinality": card,
             "reduced": fc1.attrs["out_channels"]}
    return sorted(set(chain)), attrs, pool


def op_word(op: Op) -> str:
    """How the reports name an op in a list of ops: its type, but a split-attention unit
    by what tells two apart ("split attention radix 2", ", cardinality 2" where not 1)."""
    if op.type != "SplitAttention":
        return op.type
    text = f"split attention radix {op.attrs['radix']}"
    return text + (f", cardinality {op.attrs['cardinality']}"
                   if op.attrs["cardinality"] != 1 else "")


def _fold_split_attention(ops: list[Op], rep: Representation) -> list[Op]:
    """Each split-attention unit as one `SplitAttention` op (channels, radix, cardinality,
    attention width) reading the convolution's output: the layers that spell it (Slice,
    Eltwise, Softmax ...) are how Caffe writes one computation, not architecture."""
    new: dict[int, Op] = {}
    drop: set[int] = set()
    for op in ops:
        found = _split_attention(ops, op) if op.type == "Axpy" else None
        if found is None:
            continue
        chain, attrs, pool = found
        unit = set(chain) | {op.id}
        if any(i in unit for o in ops if o.id not in unit for i in o.inputs if i != op.id):
            continue  # a part of the unit is read outside it: not one op
        layers = [name for i in chain for name in ops[i].layers] + op.layers
        new[op.id] = Op(op.id, "SplitAttention", attrs, layers, list(ops[chain[0]].inputs),
                        op.shape)
        drop.update(chain)
        _forget_pools(rep, pool.layers)
    return _replaced(ops, new, drop)


def _zeros_first(ops: list[Op], sources: list[int]) -> bool:
    """A Concat with zero channels before a non-zero input."""
    kinds = [ops[i].type == "Zeros" for i in sources]
    return any(kinds) and not all(kinds) and kinds.index(False) > 0


def _flattens(in_shape: ir.Shape, out_shape: ir.Shape) -> bool:
    """A Reshape that keeps the shape or flattens everything after the batch axis."""
    return tuple(out_shape) == tuple(in_shape) or (
        len(out_shape) == 2 and out_shape[0] == in_shape[0]
        and out_shape[1] == math.prod(in_shape[1:]))


def _per_channel(layer: ir.Layer, in_shape: ir.Shape) -> bool:
    """BatchNorm, or a Scale/Bias along axis 1 only: what a convolution can absorb."""
    if layer.type == "BatchNorm":
        return True
    p = layer.param
    return p.axis == 1 and p.num_axes == 1 and len(layer.bottoms) == 1


def _classify(layer: ir.Layer, in_shape: ir.Shape, canonical: bool) -> tuple[str, dict, dict]:
    t, p = layer.type, layer.param
    if t == "Convolution":
        if layer.fixed:
            attrs = {"stride": list(p.stride), "channels": p.num_output}
            if p.pad != (0, 0):  # a zero padding in Caffe's layers (Keras's ZeroPadding2D)
                attrs["pad"] = list(p.pad)
            return "Subsample", attrs, {}
        return "Conv", _conv_attrs(layer, in_shape, canonical), {}
    if t == "BatchNorm":
        if canonical:  # at inference a per-channel affine like any other: eps is a number in it
            return "BN", {"channels": in_shape[1], "affine": False, "shift": False}, {"eps": p.eps}
        return "BN", {"channels": in_shape[1], "eps": p.eps, "affine": False, "shift": False}, {}
    if t == "Scale" and canonical and _per_channel(layer, in_shape):
        # a per-channel Scale on its own is an inference BatchNorm: tf2onnx writes Keras's
        # pre-activation BatchNormalization as Mul + Add, one Scale with bias here
        return "BN", {"channels": in_shape[1], "affine": True, "shift": p.bias_term}, {}
    if t == "Pooling":
        attrs, extra = _pool_attrs(layer, in_shape, canonical)
        return "Pool", attrs, extra
    if t == "InnerProduct":
        attrs = {"in_features": math.prod(in_shape[p.axis:]), "out_features": p.num_output,
                 "bias": p.bias_term}
        if not canonical:
            attrs["param_shapes"] = [list(s) for s in layer.blob_shapes]
        return "FC", attrs, {}
    if t == "Eltwise":
        kind = {"SUM": "Add", "PROD": "Mul", "MAX": "Max"}[p.operation]
        attrs = {"inputs": len(layer.bottoms)}
        if p.coeff and any(c != 1 for c in p.coeff):
            attrs["coeff"] = list(p.coeff)
        return kind, attrs, {}
    if t == "Power":
        if p.scale == 0 or p.power == 0:
            with np.errstate(all="ignore"):  # 0 ** -1 and (-1) ** 0.5 are no constant to show
                value = 1.0 if p.power == 0 else float(np.float64(p.shift) ** p.power)
            if value == 0:
                return "Zeros", {"channels": in_shape[1]}, {}
            if math.isfinite(value):
                return "Constant", {"channels": in_shape[1], "value": value}, {}
        return "Power", {"power": p.power, "scale": p.scale, "shift": p.shift}, {}
    if t == "ReLU":
        return "ReLU", ({"negative_slope": p.negative_slope} if p.negative_slope else {}), {}
    if t == "PReLU":
        return "PReLU", {"channel_shared": p.channel_shared}, {}
    if t == "Softmax":
        return "Softmax", {"axis": p.axis}, {}
    if t == "Concat":
        return "Concat", {"axis": p.axis, "out_channels": layer.top_shapes[0][p.axis]}, {}
    if t == "Reshape":
        return "Reshape", {"out_shape": list(layer.top_shapes[0][1:])}, {}
    if t == "Scale":
        return "Scale", {"channels": in_shape[p.axis] if len(in_shape) > p.axis else 1,
                         "bias": p.bias_term}, {}
    if t == "Bias":
        return "Bias", {}, {}
    if t == "Slice":
        return "Slice", {"axis": p.axis, "tops": len(layer.tops)}, {}
    if t == "MVN":
        attrs = {"normalize_variance": p.normalize_variance, "across_channels": p.across_channels}
        return "MVN", attrs, ({"eps": p.eps} if p.normalize_variance else {})
    return t, {}, {}
