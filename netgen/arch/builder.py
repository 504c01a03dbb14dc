"""ArchSpec -> graph IR: the whole ResNet topology of the paper, in one place.

Names follow the published MSRA Caffe models (conv1/bn_conv1/scale_conv1, res2a_branch2a,
bn2a_branch2a, scale2a_branch2a, res2a_branch2a_relu, res2a_branch1, res2a, res2a_relu,
pool5, fc1000, prob) so that the published caffemodel files load into our deploy files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netgen.arch import ir
from netgen.arch.shapes import conv_out, infer, pool_out
from netgen.arch.spec import ArchSpec
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

    def add(self, name: str, type_: str, bottoms: list[str], param: ir.LayerParam | None = None,
            top: str | None = None, fixed: bool = False) -> str:
        top = top or name
        self.layers.append(ir.Layer(name, type_, tuple(bottoms), (top,),
                                    param if param is not None else ir.NoParam(),
                                    stage=self.stage, fixed=fixed))
        return top

    def conv_unit(self, bottom: str, conv: str, bn: str, scale: str, relu: str | None,
                  num_output: int, kernel: int, stride: int = 1, bias: bool = False) -> str:
        """Convolution + BatchNorm + Scale (+ ReLU), the last three in place, as MSRA wrote them."""
        top = self.add(conv, "Convolution", [bottom], ir.ConvolutionParam(
            num_output, (kernel, kernel), (stride, stride), (kernel // 2, kernel // 2),
            bias_term=bias))
        self.add(bn, "BatchNorm", [top], ir.BatchNormParam(use_global_stats=True), top=top)
        self.add(scale, "Scale", [top], ir.ScaleParam(bias_term=True), top=top)
        if relu:
            self.add(relu, "ReLU", [top], ir.ReLUParam(), top=top)
        return top

    def branch_unit(self, bottom: str, block: str, branch: str, relu: bool, num_output: int,
                    kernel: int, stride: int = 1) -> str:
        return self.conv_unit(bottom, f"res{block}_{branch}", f"bn{block}_{branch}",
                              f"scale{block}_{branch}", f"res{block}_{branch}_relu" if relu else None,
                              num_output, kernel, stride)


def _shortcut(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int, c_out: int,
              stride: int) -> str:
    """Option A (identity, subsample + zero channels), B (projection where shapes change), C."""
    changes = stride != 1 or c_in != c_out
    if spec.shortcut == "C" or (spec.shortcut == "B" and changes):
        return net.conv_unit(x, f"res{block}_branch1", f"bn{block}_branch1", f"scale{block}_branch1",
                             None, c_out, 1, stride)
    if not changes:
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


def _block(net: _Net, spec: ArchSpec, x: str, block: str, c_in: int, width: int,
           stride: int) -> str:
    """One basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) block, plain or residual."""
    if spec.block == "basic":
        units = [("branch2a", width, 3, stride), ("branch2b", width, 3, 1)]
        c_out = width
    else:
        s1, s3 = (stride, 1) if spec.stride_in == "1x1" else (1, stride)
        c_out = width * 4
        units = [("branch2a", width, 1, s1), ("branch2b", width, 3, s3), ("branch2c", c_out, 1, 1)]
    shortcut = None if spec.plain else _shortcut(net, spec, x, block, c_in, c_out, stride)
    y = x
    for i, (branch, channels, kernel, unit_stride) in enumerate(units):
        last = i == len(units) - 1
        y = net.branch_unit(y, block, branch, not last, channels, kernel, unit_stride)
    if shortcut is not None:
        y = net.add(f"res{block}", "Eltwise", [shortcut, y], ir.EltwiseParam("SUM"))
    net.add(f"res{block}_relu", "ReLU", [y], ir.ReLUParam(), top=y)
    return y


def build(spec: ArchSpec) -> ir.Graph:
    """The deploy graph of `spec`, shapes inferred. Table 1 / Section 4.2 come from the spec."""
    net = _Net(stage="conv1")
    size = spec.input_size
    if spec.dataset == "imagenet":
        x = net.conv_unit("data", "conv1", "bn_conv1", "scale_conv1", "conv1_relu", 64, 7, 2,
                          bias=spec.conv1_bias)
        x = net.add("pool1", "Pooling", [x], ir.PoolingParam("MAX", (3, 3), (2, 2)))
        size = pool_out(conv_out(size, 7, 2, 3), 3, 2, 0)
        c_in = 64
    else:
        c_in = spec.widths[0]
        x = net.conv_unit("data", "conv1", "bn_conv1", "scale_conv1", "conv1_relu", c_in, 3, 1,
                          bias=spec.conv1_bias)
    first_stage = 2
    ids = block_ids(spec.stages)
    for s, (width, c_out) in enumerate(zip(spec.widths, spec.out_channels)):
        net.stage = f"conv{first_stage + s}_x"
        for i, block_id in enumerate(ids[s]):
            stride = 2 if (i == 0 and s > 0) else 1
            x = _block(net, spec, x, f"{first_stage + s}{block_id}", c_in, width, stride)
            size = conv_out(size, 3, stride, 1)
            c_in = c_out
    net.stage = "head"
    last = first_stage + len(spec.stages) - 1
    x = net.add(f"pool{last}", "Pooling", [x], ir.PoolingParam("AVE", (size, size), (1, 1)))
    x = net.add(f"fc{spec.num_classes}", "InnerProduct", [x], ir.InnerProductParam(spec.num_classes))
    net.add("prob", "Softmax", [x], ir.SoftmaxParam())
    inputs = [ir.Blob("data", (1, 3, spec.input_size, spec.input_size))]
    return infer(spec.name, inputs, net.layers)
