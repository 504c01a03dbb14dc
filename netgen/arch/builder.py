"""ArchSpec -> graph IR: the whole ResNet topology of the paper and its family, in one place.

A block is a kind from BLOCK_KINDS: its units (basic 3x3-3x3, bottleneck 1x1-3x3-1x1,
grouped or widened for ResNeXt and Wide ResNets) and its wiring (the paper's
post-activation, or the pre-activation of He et al. ECCV 2016). Nothing here knows a file format.

Names follow the published MSRA Caffe models (conv1/bn_conv1/scale_conv1, res2a_branch2a,
bn2a_branch2a, scale2a_branch2a, res2a_branch2a_relu, res2a_branch1, res2a, res2a_relu,
pool5, fc1000, prob) so that the published caffemodel files load into our deploy files.
The descendants keep that scheme: an SE unit is res2a_se_pool, res2a_se_down (+ _relu),
res2a_se_up, res2a_se_prob and the sum res2a (an Axpy); ResNet-C's stem conv1_1..conv1_3
(bn_conv1_1, scale_conv1_1, conv1_1_relu, ...); ResNet-D's pooling res3a_branch1_pool.
ArcFace's IResNet: conv1_prelu in the stem; in a block bn2a_branch2 / scale2a_branch2 (the
BN that opens the branch), res2a_branch2a, bn2a_branch2a, scale2a_branch2a,
res2a_branch2a_prelu, res2a_branch2b (the stride), bn2a_branch2b, scale2a_branch2b and the
sum res2a; the head bn_head / scale_head, fc512, bn_embedding / scale_embedding (blob
`embedding`). A Res2Net block: res2a_branch2a (+ BN, Scale, ReLU), its Slice
res2a_branch2a_split, per split i the sum res2a_branch2b_i_in (from the second on, where the
block is not a stage's first), res2a_branch2b_i (+ bn2a_branch2b_i, scale2a_branch2b_i,
res2a_branch2b_i_relu), the last split's res2a_branch2b_pool (a stage's first block), the
Concat res2a_branch2b, then res2a_branch2c as a bottleneck's. ResNet-RS's pool1 is
pool1_conv, bn_pool1_conv, scale_pool1_conv, pool1_conv_relu.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from netgen.arch import ir
from netgen.arch.shapes import conv_out, infer, pool_out, rounding_matters
from netgen.arch.spec import (IRESNET_EMBEDDING, STEM_POOL_CONV, STEM_POOLS, ArchSpec,
                              eca_kernel, se_width_of)
from netgen.errors import NetgenError

# The published 101/152 number the blocks of their long stages (res4b1..res4b22) while 50
# uses letters. Rule that reproduces all three: a net with a stage of more than 6 blocks
# numbers each of its stages that has more than 3.
LETTERED_MAX_STAGE = 6
LETTERED_MAX_BLOCKS = 3


def block_ids(stages: tuple[int, ...]) -> list[list[str]]:
    """Identifiers per stage: 'a', 'b', 'c' ... or 'a', 'b1', 'b2' ... as in the MSRA files."""
    numbered_net = max(stages) > LETTERED_MAX_STAGE
    ids = []
    for count in stages:
        if count > 26 or (numbered_net and count > LETTERED_MAX_BLOCKS):
            ids.append(["a"] + [f"b{i}" for i in range(1, count)])
        else:
            ids.append([chr(ord("a") + i) for i in range(count)])
    return ids


@dataclass
class _Net:
    """A tiny declarative core: append layers, get back the top to wire the next one to."""

    layers: list[ir.Layer] = field(default_factory=list)
    stage: str = ""
    size: int = 0  # the map size entering the block being built (a pooling's rounding)

    def add(self, name: str, type_: str, bottoms: list[str], param: ir.LayerParam | None = None,
            top: str | None = None, fixed: bool = False) -> str:
        top = top or name
        self.layers.append(ir.Layer(name, type_, tuple(bottoms), (top,),
                                    param if param is not None else ir.NoParam(),
                                    stage=self.stage, fixed=fixed))
        return top

    def conv(self, bottom: str, name: str, num_output: int, kernel: int, stride: int = 1,
             group: int = 1, bias: bool = False) -> str:
        return self.add(name, "Convolution", [bottom], ir.ConvolutionParam(
            num_output, (kernel, kernel), (stride, stride), (kernel // 2, kernel // 2),
            group=group, bias_term=bias))

    def bn_relu(self, bottom: str, bn: str, scale: str, relu: str | None,
                in_place: bool = True) -> str:
        """BatchNorm + Scale (+ ReLU). In place on `bottom` unless another layer still reads
        it (a pre-activation block's input is also its shortcut's): then on a new blob `bn`."""
        top = self.add(bn, "BatchNorm", [bottom], ir.BatchNormParam(use_global_stats=True),
                       top=bottom if in_place else bn)
        self.add(scale, "Scale", [top], ir.ScaleParam(bias_term=True), top=top)
        if relu:
            self.add(relu, "ReLU", [top], ir.ReLUParam(), top=top)
        return top

    def conv_unit(self, bottom: str, conv: str, bn: str, scale: str, relu: str | None,
                  num_output: int, kernel: int, stride: int = 1, bias: bool = False,
                  group: int = 1) -> str:
        """Convolution + BatchNorm + Scale (+ ReLU), the last three in place, as MSRA wrote them."""
        top = self.conv(bottom, conv, num_output, kernel, stride, group, bias)
        return self.bn_relu(top, bn, scale, relu)


@dataclass(frozen=True)
class Unit:
    """One convolution of a residual branch (branch2a, 2b, 2c) and what it needs."""

    branch: str
    channels: int
    kernel: int
    stride: int = 1
    group: int = 1


def _unit_names(block: str, branch: str) -> tuple[str, str, str, str]:
    """conv, BatchNorm, Scale and ReLU of a unit: res2a_branch2a, bn2a_branch2a, ... (MSRA)."""
    return (f"res{block}_{branch}", f"bn{block}_{branch}", f"scale{block}_{branch}",
            f"res{block}_{branch}_relu")


def basic_units(spec: ArchSpec, s: int, stride: int) -> list[Unit]:
    """3x3, 3x3 (Fig. 5 left)."""
    width = spec.widths[s]
    return [Unit("branch2a", width, 3, stride), Unit("branch2b", width, 3)]


def bottleneck_units(spec: ArchSpec, s: int, stride: int) -> list[Unit]:
    """1x1, 3x3, 1x1 (Fig. 5 right). The stride on the first 1x1 (MSRA) or on the 3x3
    (torchvision); ResNeXt groups the 3x3 and, with Wide ResNets, widens the inner two."""
    s1, s3 = (stride, 1) if spec.stride_in == "1x1" else (1, stride)
    inner = spec.inner_widths[s]
    return [Unit("branch2a", inner, 1, s1), Unit("branch2b", inner, 3, s3, spec.groups),
            Unit("branch2c", spec.out_channels[s], 1)]


def _needs_projection(spec: ArchSpec, c_in: int, c_out: int, stride: int) -> bool:
    """Option C everywhere, option B where the shape changes (Section 3.3)."""
    changes = stride != 1 or c_in != c_out
    return spec.shortcut == "C" or (spec.shortcut == "B" and changes)


def _identity(net: _Net, x: str, block: str, c_in: int, c_out: int, stride: int) -> str:
    """The identity shortcut; where the shape changes, option A's subsample and zero channels."""
    if stride == 1 and c_in == c_out:
        return x
    # Option A from stock Caffe layers: a depthwise 1x1 convolution with constant weight 1 and
    # stride 2 is exactly x[:, :, ::2, ::2] (convolution rounds down; Pooling would round up),
    # Power with scale 0 makes zeros of the same shape, Concat appends them as new channels.
    if c_out < c_in or (c_out - c_in) % c_in:
        raise NetgenError(f"option A pads channels with zeros and needs the new width ({c_out}) "
                          f"to be a multiple of the old ({c_in}) in block {block}; use -s B or C")
    if stride != 1:
        x = net.add(f"res{block}_branch1_sub", "Convolution", [x], ir.ConvolutionParam(
            c_in, (1, 1), (stride, stride), group=c_in, bias_term=False), fixed=True)
    zeros = net.add(f"res{block}_branch1_zeros", "Power", [x], ir.PowerParam(scale=0.0))
    copies = (c_out - c_in) // c_in
    return net.add(f"res{block}_branch1", "Concat", [x] + [zeros] * copies, ir.ConcatParam(axis=1))


def projection(net: _Net, spec: ArchSpec, x: str, block: str, c_out: int, stride: int) -> str:
    """The projection shortcut: 1x1 conv + BN. ResNet-D (spec.avg_down) downsamples by a 2x2
    average pooling of stride 2 first (res3a_branch1_pool) and convolves with stride 1.
    Caffe's AVE pooling with pad 0 rounds up and divides a window by its part inside the
    map, which is timm's AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) on maps of
    any size, odd ones included."""
    if spec.avg_down and stride != 1:
        x = net.add(f"res{block}_branch1_pool", "Pooling", [x],
                    ir.PoolingParam("AVE", (stride, stride), (stride, stride)))
        stride = 1
    return net.conv_unit(x, f"res{block}_branch1", f"bn{block}_branch1",
                         f"scale{block}_branch1", None, c_out, 1, stride)


def se_gate(net: _Net, x: str, block: str, channels: int, reduced: int) -> str:
    """Squeeze-and-excitation's gate of a branch (Hu et al., CVPR 2018): global average
    pooling, 1x1 conv (bias) to `reduced`, ReLU, 1x1 conv (bias) back, Sigmoid in place, as
    SENet's Caffe files (conv2_1_global_pool, _1x1_down, _1x1_up, _prob) in netgen's names.
    Returns the N x C x 1 x 1 gate; the Axpy that multiplies and adds is the caller's."""
    pooled = net.add(f"res{block}_se_pool", "Pooling", [x],
                     ir.PoolingParam("AVE", global_pooling=True))
    down = net.conv(pooled, f"res{block}_se_down", reduced, 1, bias=True)
    net.add(f"res{block}_se_down_relu", "ReLU", [down], ir.ReLUParam(), top=down)
    up = net.conv(down, f"res{block}_se_up", channels, 1, bias=True)
    return net.add(f"res{block}_se_prob", "Sigmoid", [up], ir.NoParam(), top=up)


def eca_gate(net: _Net, x: str, block: str, kernel: int) -> str:
    """timm's ECA gate of a branch (EcaModule: mean over H and W, Conv1d(1, 1, k, padding
    k // 2, bias=False) across the channels, sigmoid) in stock Caffe layers: global average
    pooling to N x C x 1 x 1, a Reshape to N x 1 x 1 x C so that the channels lie along W, a
    1 x k convolution of one input and one output channel (pad k // 2 on W, zeros at both
    ends as Conv1d's), Sigmoid in place, a Reshape back to N x C x 1 x 1. The ONNX importer
    brings timm's exports to this same form (netgen.onnx.normalize.eca). Returns the gate;
    the Axpy that multiplies and adds is the caller's."""
    pooled = net.add(f"res{block}_eca_pool", "Pooling", [x],
                     ir.PoolingParam("AVE", global_pooling=True))
    row = net.add(f"res{block}_eca_row", "Reshape", [pooled], ir.ReshapeParam((0, 1, 1, -1)))
    conv = net.add(f"res{block}_eca_conv", "Convolution", [row],
                   ir.ConvolutionParam(1, (1, kernel), pad=(0, kernel // 2), bias_term=False))
    net.add(f"res{block}_eca_prob", "Sigmoid", [conv], ir.NoParam(), top=conv)
    return net.add(f"res{block}_eca_gate", "Reshape", [conv], ir.ReshapeParam((0, -1, 1, 1)))


def post_activation(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int,
                    units: list[Unit], stride: int, entry: bool) -> str:
    """The paper's unit (Fig. 2): conv-BN-ReLU, ..., conv-BN, sum with the shortcut, ReLU.
    The projection is 1x1 conv + BN on the block's input. (`entry` is the pre-activation
    wiring's; these blocks have nothing before their first convolution.)"""
    c_out = units[-1].channels
    shortcut = None
    if not spec.plain:
        if _needs_projection(spec, c_in, c_out, stride):
            shortcut = projection(net, spec, x, block, c_out, stride)
        else:
            shortcut = _identity(net, x, block, c_in, c_out, stride)
    y = x
    for i, unit in enumerate(units):
        conv, bn, scale, relu = _unit_names(block, unit.branch)
        last = i == len(units) - 1
        y = net.conv_unit(y, conv, bn, scale, None if last else relu, unit.channels,
                          unit.kernel, unit.stride, group=unit.group)
    if shortcut is not None and spec.se_reduction:
        # SE: gate * branch + shortcut, one Axpy in the IR (SENet's layer); the prototxt
        # emitter writes it in stock layers unless told otherwise.
        reduced = se_width_of(c_out, spec.se_reduction, spec.se_width or "floor")
        gate = se_gate(net, y, block, c_out, reduced)
        y = net.add(f"res{block}", "Axpy", [gate, y, shortcut], ir.NoParam())
    elif shortcut is not None and spec.eca:
        gate = eca_gate(net, y, block, eca_kernel(c_out))
        y = net.add(f"res{block}", "Axpy", [gate, y, shortcut], ir.NoParam())
    elif shortcut is not None:
        y = net.add(f"res{block}", "Eltwise", [shortcut, y], ir.EltwiseParam("SUM"))
    net.add(f"res{block}_relu", "ReLU", [y], ir.ReLUParam(), top=y)
    return y


def pre_activation(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int,
                   units: list[Unit], stride: int, entry: bool) -> str:
    """The pre-activation unit (ECCV 2016, Fig. 1b / 4e): BN-ReLU-conv per unit, then the
    sum, with nothing after it: the shortcut path stays clean from block to block.

    Each unit's bnX_branchY / scaleX_branchY / resX_branchY_relu come before the convolution
    resX_branchY they feed. The first unit's BN-ReLU writes a new blob, because the block's
    input is also its shortcut's; `entry` False leaves it out where the stem's BN-ReLU (and
    pool) directly precede (ImageNet's first block, as fb.resnet.torch). A projection
    (1x1 conv, no BN: the next BN normalises the sum) takes the block's pre-activated input,
    as the authors' code (resnet-1k-layers) and the paper ("these projection shortcuts are
    also with pre-activation"); identity shortcuts, option A's included, take the raw input.
    With SE (the PyTorch CIFAR code's SENet18) the gate scales the branch before the sum,
    one Axpy as in the post-activation unit, and nothing follows it either.
    """
    c_out = units[-1].channels
    y = x
    for i, unit in enumerate(units):
        conv, bn, scale, relu = _unit_names(block, unit.branch)
        if i > 0 or entry:
            y = net.bn_relu(y, bn, scale, relu, in_place=i > 0)
        if i == 0:
            if _needs_projection(spec, c_in, c_out, stride):
                shortcut = net.conv(y, f"res{block}_branch1", c_out, 1, stride)
            else:
                shortcut = _identity(net, x, block, c_in, c_out, stride)
        y = net.conv(y, conv, unit.channels, unit.kernel, unit.stride, unit.group)
    if spec.se_reduction:
        reduced = se_width_of(c_out, spec.se_reduction, spec.se_width or "floor")
        gate = se_gate(net, y, block, c_out, reduced)
        return net.add(f"res{block}", "Axpy", [gate, y, shortcut], ir.NoParam())
    return net.add(f"res{block}", "Eltwise", [shortcut, y], ir.EltwiseParam("SUM"))


def res2net_units(spec: ArchSpec, s: int, stride: int) -> list[Unit]:
    """timm's Bottle2neck: the 1x1 to scale x width, one 3x3 of `width` per split but the
    last (all with the stride), the closing 1x1."""
    width, scale = spec.res2net_widths[s], spec.res2net_scale
    return [Unit("branch2a", width * scale, 1)] + [
        Unit(f"branch2b_{i}", width, 3, stride) for i in range(1, scale)] + [
        Unit("branch2c", spec.out_channels[s], 1)]


def res2net(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int, units: list[Unit],
            stride: int, entry: bool) -> str:
    """timm's Res2Net block (Bottle2neck.forward) in stock layers: the 1x1 + BN-ReLU, a
    Slice into the splits, each 3x3 + BN-ReLU on its split (plus the previous 3x3's output
    from the second on, an Eltwise sum, except in a block that projects: timm's is_first),
    the last split as it is or, where the block projects, through timm's
    AvgPool2d(3, stride, padding=1) (pad counted, as Caffe's AVE pooling does, rounding
    down where that changes the size), the Concat of all, then the closing 1x1 + BN, the
    sum with the shortcut and ReLU as the paper's unit. The convolutions are written in
    timm's order (the splits' first, then the pooling), as its exports have them, so that
    the units of both files pair up in order."""
    first, *splits, last = units
    c_out = last.channels
    project = _needs_projection(spec, c_in, c_out, stride)
    shortcut = (projection(net, spec, x, block, c_out, stride) if project
                else _identity(net, x, block, c_in, c_out, stride))
    conv, bn, scale, relu = _unit_names(block, first.branch)
    y = net.conv_unit(x, conv, bn, scale, relu, first.channels, 1)
    width = splits[0].channels
    count = len(splits) + 1
    pieces = [f"{conv}_split{i}" for i in range(1, count + 1)]
    net.layers.append(ir.Layer(f"{conv}_split", "Slice", (y,), tuple(pieces),
                               ir.SliceParam(1, tuple(width * i for i in range(1, count))),
                               stage=net.stage))
    outs: list[str] = []
    for i, unit in enumerate(splits):
        piece = pieces[i]
        if outs and not project:
            piece = net.add(f"res{block}_{unit.branch}_in", "Eltwise", [outs[-1], piece],
                            ir.EltwiseParam("SUM"))
        conv, bn, scale, relu = _unit_names(block, unit.branch)
        outs.append(net.conv_unit(piece, conv, bn, scale, relu, unit.channels, unit.kernel,
                                  unit.stride))
    rest = pieces[-1]
    if project:
        param = ir.PoolingParam("AVE", (3, 3), (stride, stride), (1, 1), round_mode="FLOOR")
        if not rounding_matters(param, (net.size, net.size)):
            param = ir.PoolingParam("AVE", (3, 3), (stride, stride), (1, 1))
        rest = net.add(f"res{block}_branch2b_pool", "Pooling", [rest], param)
    y = net.add(f"res{block}_branch2b", "Concat", outs + [rest], ir.ConcatParam(axis=1))
    conv, bn, scale, _ = _unit_names(block, last.branch)
    y = net.conv_unit(y, conv, bn, scale, None, c_out, 1)
    y = net.add(f"res{block}", "Eltwise", [shortcut, y], ir.EltwiseParam("SUM"))
    net.add(f"res{block}_relu", "ReLU", [y], ir.ReLUParam(), top=y)
    return y


def improved_units(spec: ArchSpec, s: int, stride: int) -> list[Unit]:
    """IResNet's 3x3, 3x3 with the stride on the second (insightface's IBasicBlock.conv2)."""
    width = spec.widths[s]
    return [Unit("branch2a", width, 3), Unit("branch2b", width, 3, stride)]


def improved(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int,
             units: list[Unit], stride: int, entry: bool) -> str:
    """ArcFace's "improved" residual unit (insightface's IBasicBlock): BN, 3x3 conv, BN,
    PReLU, 3x3 conv, BN, then the sum with nothing after it. The opening BN writes its own
    blob (bnX_branch2), because the block's input is also its shortcut's; the projection
    (1x1 conv + BN, where the shape changes) takes the raw input, as `downsample(x)` does.
    PReLU has one slope per channel (nn.PReLU(planes))."""
    c_out = units[-1].channels
    if _needs_projection(spec, c_in, c_out, stride):
        shortcut = projection(net, spec, x, block, c_out, stride)
    else:
        shortcut = _identity(net, x, block, c_in, c_out, stride)
    y = net.bn_relu(x, f"bn{block}_branch2", f"scale{block}_branch2", None, in_place=False)
    for i, unit in enumerate(units):
        conv, bn, scale, _ = _unit_names(block, unit.branch)
        y = net.conv_unit(y, conv, bn, scale, None, unit.channels, unit.kernel, unit.stride,
                          group=unit.group)
        if i < len(units) - 1:
            net.add(f"{conv}_prelu", "PReLU", [y], ir.PReLUParam(), top=y)
    return net.add(f"res{block}", "Eltwise", [shortcut, y], ir.EltwiseParam("SUM"))


def embedding_head(net: _Net, x: str) -> str:
    """IResNet's head, the embedding (insightface's bn2, flatten, dropout, fc, features): BN
    over the last map, fc 512 (the InnerProduct flattens by itself; dropout is 0 at
    inference, so there is none), BatchNorm1d as BatchNorm + Scale whose gamma stays 1
    (`features.weight.requires_grad = False`: the train_val freezes it, EMBEDDING_SCALE)."""
    x = net.bn_relu(x, "bn_head", "scale_head", None)
    fc = net.add(f"fc{IRESNET_EMBEDDING}", "InnerProduct", [x],
                 ir.InnerProductParam(IRESNET_EMBEDDING))
    emb = net.add("bn_embedding", "BatchNorm", [fc], ir.BatchNormParam(use_global_stats=True),
                  top=EMBEDDING)
    return net.add(EMBEDDING_SCALE, "Scale", [emb], ir.ScaleParam(bias_term=True), top=emb)


# The blob an IResNet's deploy net outputs, and the Scale whose gamma is fixed at 1.
EMBEDDING = "embedding"
EMBEDDING_SCALE = "scale_embedding"


@dataclass(frozen=True)
class BlockKind:
    """How a block is shaped (its units) and how it is wired around them."""

    units: Callable[[ArchSpec, int, int], list[Unit]]
    wiring: Callable[..., str]


# Every block the builder makes; ArchSpec.block_kind picks one.
BLOCK_KINDS: dict[str, BlockKind] = {
    "basic": BlockKind(basic_units, post_activation),
    "bottleneck": BlockKind(bottleneck_units, post_activation),
    "preact-basic": BlockKind(basic_units, pre_activation),
    "preact-bottleneck": BlockKind(bottleneck_units, pre_activation),
    "improved-basic": BlockKind(improved_units, improved),
    "res2net": BlockKind(res2net_units, res2net),
}


def stem_pool_param(spec: ArchSpec, size: int) -> ir.PoolingParam:
    """pool1, 3x3 stride 2, on a `size` x `size` map, with spec.stem_pool's pad and rounding.
    Rounding down is written FLOOR only where it gives another size than rounding up, as
    the readers write it: where both agree the windows, so the numbers, are the same."""
    pad, round_mode = STEM_POOLS[spec.stem_pool or "msra"]
    param = ir.PoolingParam("MAX", (3, 3), (2, 2), (pad, pad), round_mode=round_mode)
    if round_mode == "FLOOR" and not rounding_matters(param, (size, size)):
        param = ir.PoolingParam("MAX", (3, 3), (2, 2), (pad, pad))
    return param


def deep_stem(net: _Net, spec: ArchSpec, size: int) -> tuple[str, int]:
    """ResNet-C's stem (He et al., CVPR 2019; timm's stem_type="deep"): 3x3 convolutions of
    32 (stride 2), 32 and 64 channels, each with BN and ReLU: conv1_1, bn_conv1_1,
    scale_conv1_1, conv1_1_relu, ... conv1_3 (timm's "deep_tiered": 24, 32, 64). A conv1
    bias goes on the first."""
    x = "data"
    for i, width in enumerate(spec.stem_widths, start=1):
        stride = 2 if i == 1 else 1
        x = net.conv_unit(x, f"conv1_{i}", f"bn_conv1_{i}", f"scale_conv1_{i}",
                          f"conv1_{i}_relu", width, 3, stride, bias=spec.conv1_bias and i == 1)
        size = conv_out(size, 3, stride, 1)
    return x, size


def build(spec: ArchSpec) -> ir.Graph:
    """The deploy graph of `spec`, shapes inferred. Table 1 / Section 4.2 come from the spec.

    Stem: ImageNet conv1 7x7/2 (or ResNet-C's three 3x3) + BN-ReLU + pool1 3x3/2 (MSRA's or torchvision's padding and
    rounding, spec.stem_pool); CIFAR-10 conv1 3x3 + BN-ReLU, or for
    pre-activation nets conv1 alone (the authors' resnet-1k-layers): its first block's
    BN-ReLU follows. A CIFAR-10 net with ImageNet stages has the same stem with 64 channels
    (spec.widths[0]) and Table 1's stages after it, as the PyTorch CIFAR code's ResNet18.
    Pre-activation nets end with BN-ReLU before the average pool unless spec.final_bn is
    False (that code's PreActResNet and SENet have none); spec.stem_bn gives a CIFAR-10
    pre-activation conv1 its own BN-ReLU before the first block's (that code's SENet18), and
    spec.stem_kernel 1 makes conv1 a 1x1 (its ResNeXt29). The head pools the whole last map
    (4x4 at 32: its F.avg_pool2d(out, 4)).
    """
    kind = BLOCK_KINDS[spec.block_kind]
    net = _Net(stage="conv1")
    size = spec.input_size
    if spec.iresnet:
        # ArcFace: 3x3 conv 64 stride 1, BN, PReLU; no pooling (every stage subsamples)
        x = net.conv_unit("data", "conv1", "bn_conv1", "scale_conv1", None, 64, 3,
                          bias=spec.conv1_bias)
        net.add("conv1_prelu", "PReLU", [x], ir.PReLUParam(), top=x)
        c_in = 64
    elif spec.dataset == "imagenet":
        if spec.deep_stem:
            x, size = deep_stem(net, spec, size)
        else:
            x = net.conv_unit("data", "conv1", "bn_conv1", "scale_conv1", "conv1_relu", 64, 7,
                              2, bias=spec.conv1_bias)
            size = conv_out(size, 7, 2, 3)
        if spec.stem_pool == STEM_POOL_CONV:
            # ResNet-RS (timm's replace_stem_pool): a 3x3 stride-2 convolution, BN, ReLU
            x = net.conv_unit(x, "pool1_conv", "bn_pool1_conv", "scale_pool1_conv",
                              "pool1_conv_relu", 64, 3, 2)
            size = conv_out(size, 3, 2, 1)
        else:
            pool = stem_pool_param(spec, size)
            x = net.add("pool1", "Pooling", [x], pool)
            size = pool_out(size, 3, 2, pool.pad[0], pool.round_mode)
        c_in = 64
    else:
        c_in = spec.widths[0]
        x = net.conv("data", "conv1", c_in, spec.stem_kernel, bias=spec.conv1_bias)
        if not spec.preact or spec.stem_bn:
            x = net.bn_relu(x, "bn_conv1", "scale_conv1", "conv1_relu")
    stem_activated = spec.dataset == "imagenet" or not spec.preact
    first_stage = 2
    ids = block_ids(spec.stages)
    for s, c_out in enumerate(spec.out_channels):
        net.stage = f"conv{first_stage + s}_x"
        for i, block_id in enumerate(ids[s]):
            stride = 2 if (i == 0 and (s > 0 or spec.iresnet)) else 1
            entry = not (s == 0 and i == 0 and stem_activated)
            net.size = size
            x = kind.wiring(net, spec, x, f"{first_stage + s}{block_id}", c_in,
                            kind.units(spec, s, stride), stride, entry)
            size = conv_out(size, 3, stride, 1)
            c_in = c_out
    net.stage = "head"
    if spec.iresnet:
        embedding_head(net, x)
        inputs = [ir.Blob("data", (1, 3, spec.input_size, spec.input_size))]
        return infer(spec.name, inputs, net.layers)
    if spec.preact and spec.final_bn:
        x = net.bn_relu(x, "bn_final", "scale_final", "final_relu")
    last = first_stage + len(spec.stages) - 1
    x = net.add(f"pool{last}", "Pooling", [x], ir.PoolingParam("AVE", (size, size), (1, 1)))
    x = net.add(f"fc{spec.num_classes}", "InnerProduct", [x], ir.InnerProductParam(spec.num_classes))
    net.add("prob", "Softmax", [x], ir.SoftmaxParam())
    inputs = [ir.Blob("data", (1, 3, spec.input_size, spec.input_size))]
    return infer(spec.name, inputs, net.layers)
