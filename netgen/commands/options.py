"""Click options shared by the commands: the architecture spec, the input shape."""

from __future__ import annotations

import functools
from typing import Callable

import click

from netgen.arch.spec import ArchSpec, make_spec
from netgen.errors import InputShapeNeeded, NetgenError

INPUT_SHAPE_HINT = "--input-shape N,C,H,W (e.g. --input-shape 1,3,32,32)"


def _parse_list(text: str | None, what: str, cast: Callable, example: str) -> tuple | None:
    if text is None:
        return None
    try:
        return tuple(cast(part) for part in text.split(","))
    except ValueError:
        raise NetgenError(f"{what} must be comma-separated {example}, got {text!r}") from None


def parse_int_list(text: str | None, what: str) -> tuple[int, ...] | None:
    return _parse_list(text, what, int, "integers like 3,4,6,3")


def parse_float_list(text: str | None, what: str) -> tuple[float, ...] | None:
    return _parse_list(text, what, float, "numbers like 104,117,123")


def spec_options(func: Callable) -> Callable:
    """--dataset --depth --shortcut --plain --stages --block --classes --input-size --stride-in
    --conv1-bias --stem-pool, and the family's --preact --groups --width-per-group
    --width-factor --imagenet-stages --se --se-width --deep-stem --avg-down --iresnet --eca
    --tiered-stem --res2net-scale --res2net-width, and the
    CIFAR code's --no-final-bn --stem-bn --stem-kernel."""
    options = [
        click.option("--dataset", default="imagenet", show_default=True,
                     help="imagenet (Table 1) or cifar10 (Section 4.2)."),
        click.option("--depth", "-d", type=int, default=None,
                     help="Table 1 depth (18, 34, 50, 101, 152) or CIFAR-10 6n+2. [default: 50 / 20]"),
        click.option("--shortcut", "-s", default=None,
                     help="Shortcut option A, B or C (Section 3.3). [default: B for ImageNet, A for CIFAR-10]"),
        click.option("--plain", is_flag=True, help="The plain counterpart: no shortcuts."),
        click.option("--stages", default=None, help="Blocks per stage for a custom layout, e.g. 3,24,36,3."),
        click.option("--block", default=None, help="basic or bottleneck (with --stages)."),
        click.option("--classes", "num_classes", type=int, default=None,
                     help="Number of classes. [default: 1000 / 10]"),
        click.option("--input-size", type=int, default=None, help="Input height and width. [default: 224 / 32]"),
        click.option("--stride-in", default=None,
                     help="Where a bottleneck downsamples: 1x1 (the paper's Caffe models) or 3x3 (torchvision)."
                          " [default: 3x3 for ResNeXt, Wide and ImageNet --preact nets, else 1x1]"),
        click.option("--conv1-bias/--no-conv1-bias", default=None,
                     help="Bias on conv1. [default: only for ResNet-50-B, as the published caffemodel]"),
        click.option("--stem-pool", default=None,
                     help="ImageNet pool1 (3x3, stride 2): msra (pad 0, rounding up, as the "
                          "published Caffe models) or torchvision (pad 1, rounding down, as "
                          "torchvision and fb.resnet.torch), or conv (ResNet-RS's 3x3 stride-2 "
                          "convolution with BN and ReLU instead of the pooling). [default: "
                          "torchvision for ResNeXt, Wide and --preact nets, else msra]"),
        click.option("--preact", is_flag=True,
                     help="Pre-activation units (He et al., ECCV 2016): BN-ReLU-conv, nothing after "
                          "the sum; on CIFAR-10 depth 164 and 1001 are bottleneck nets (9n+2)."),
        click.option("--groups", type=int, default=None,
                     help="Groups of the bottleneck's 3x3 convolution (ResNeXt cardinality). [default: 1]"),
        click.option("--width-per-group", type=int, default=None,
                     help="Bottleneck width per group, torchvision's width_per_group: inner width "
                          "int(planes * W / 64) * G. [default: 64]"),
        click.option("--width-factor", type=int, default=None,
                     help="Wide ResNet factor K: --width-per-group 64K (wide_resnet50_2 is 2)."),
        click.option("--imagenet-stages", is_flag=True,
                     help="CIFAR-10 only: Table 1's four stages (64..512 channels, depth 18, 34, "
                          "50, 101, 152) after a 3x3 conv1 with no pool1, option B: the "
                          "literature's 'ResNet-18 on CIFAR-10' (the PyTorch CIFAR code's "
                          "ResNet18). [default depth: 18]"),
        click.option("--se", type=int, default=None,
                     help="Squeeze-and-excitation units of reduction R on every residual branch "
                          "(SENet, timm's se* nets use 16)."),
        click.option("--se-width", default=None,
                     help="An SE unit's reduced width: floor (C // R, SENet's Caffe files and "
                          "hand-written code) or timm (C / R rounded to a multiple of 8). "
                          "[default: timm on ImageNet, floor on CIFAR-10]"),
        click.option("--deep-stem", is_flag=True,
                     help="ResNet-C's stem: 3x3 convolutions of 32 (stride 2), 32, 64 channels "
                          "instead of the 7x7 (timm's *c and *d nets)."),
        click.option("--avg-down", is_flag=True,
                     help="ResNet-D's projection: 2x2 average pooling of stride 2 before the 1x1 "
                          "convolution, which keeps stride 1 (timm's *d nets)."),
        click.option("--eca", is_flag=True,
                     help="timm's ECA units on every residual branch (ecaresnet*): global "
                          "average pooling, a 1-D convolution of k taps across the channels "
                          "(k from C by timm's rule: 5 for 256..1024, 7 for 2048), sigmoid, "
                          "the channel-wise product."),
        click.option("--tiered-stem", is_flag=True,
                     help="timm's *t stem: 3x3 convolutions of 24 (stride 2), 32, 64 channels "
                          "instead of ResNet-C's 32, 32, 64; with --avg-down (resnet50t)."),
        click.option("--res2net-scale", type=int, default=None,
                     help="timm's Res2Net blocks of S splits: a 1x1 to S x W channels, "
                          "hierarchical 3x3s on the first S - 1 splits, the concatenation, "
                          "the closing 1x1 (res2net50-26w-4s: S 4, W 26)."),
        click.option("--res2net-width", type=int, default=None,
                     help="A Res2Net split's base width W: floor(planes x W / 64) channels "
                          "per split. [default: 26]"),
        click.option("--final-bn/--no-final-bn", default=None,
                     help="A pre-activation net's BN-ReLU after its last block (the PyTorch "
                          "CIFAR code's PreActResNet and SENet have none). [default: with]"),
        click.option("--stem-bn", is_flag=True,
                     help="CIFAR-10 --preact only: a BN-ReLU after conv1, before the first "
                          "block's own (the PyTorch CIFAR code's SENet18)."),
        click.option("--stem-kernel", type=int, default=None,
                     help="CIFAR-10 conv1's kernel: 3 or 1 (the PyTorch CIFAR code's "
                          "ResNeXt29). [default: 3]"),
        click.option("--iresnet", is_flag=True,
                     help="ArcFace's face-recognition IResNet (insightface's iresnet18..200: "
                          "depth 18, 34, 50, 100, 200): 112x112 input, 3x3 stem with PReLU, "
                          "BN-conv-BN-PReLU-conv-BN blocks, the 512-d embedding head; --classes "
                          "is the identities its train_val classifies. [default classes: 93431]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def spec_from(dataset: str, depth: int | None, shortcut: str | None, plain: bool,
              stages: str | None, block: str | None, num_classes: int | None,
              input_size: int | None, stride_in: str | None, conv1_bias: bool | None,
              preact: bool = False, groups: int | None = None,
              width_per_group: int | None = None, width_factor: int | None = None,
              stem_pool: str | None = None, imagenet_stages: bool = False,
              se: int | None = None, se_width: str | None = None, deep_stem: bool = False,
              avg_down: bool = False, final_bn: bool | None = None, stem_bn: bool = False,
              stem_kernel: int | None = None, iresnet: bool = False, eca: bool = False,
              tiered_stem: bool = False, res2net_scale: int | None = None,
              res2net_width: int | None = None) -> ArchSpec:
    return make_spec(dataset=dataset, depth=depth, shortcut=shortcut, plain=plain,
                     stages=parse_int_list(stages, "--stages"), block=block,
                     num_classes=num_classes, input_size=input_size, stride_in=stride_in,
                     conv1_bias=conv1_bias, preact=preact, groups=groups,
                     width_per_group=width_per_group, width_factor=width_factor,
                     stem_pool=stem_pool, imagenet_stages=imagenet_stages, se=se,
                     se_width=se_width, deep_stem=deep_stem, avg_down=avg_down,
                     final_bn=final_bn, stem_bn=stem_bn, stem_kernel=stem_kernel,
                     iresnet=iresnet, eca=eca, tiered_stem=tiered_stem,
                     res2net_scale=res2net_scale, res2net_width=res2net_width)


def parse_input_shape(text: str | None) -> tuple[int, int, int, int] | None:
    """N,C,H,W: four positive integers."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise NetgenError(f"--input-shape needs four positive integers N,C,H,W (e.g. "
                          f"1,3,32,32), got {text!r}")
    return shape  # type: ignore[return-value]


def input_shape_option(func: Callable) -> Callable:
    """--input-shape N,C,H,W for a prototxt whose data layer does not tell the input size,
    and the hint naming it in that error: the reader's message names no option (a command
    without this one must not suggest it), the command that has it adds it here."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputShapeNeeded as exc:
            raise exc.with_hint(INPUT_SHAPE_HINT) from None

    return click.option(
        "--input-shape", metavar="N,C,H,W", default=None,
        callback=lambda ctx, param, value: parse_input_shape(value),
        help="Input shape of a prototxt whose data layer does not tell it (an LMDB Data layer "
             "without crop_size, an HDF5Data source that is not at hand); a file that "
             "declares its size keeps it.")(run)


def spec_given(spec_args: dict) -> bool:
    """Whether any spec option was given (not only --depth): a network to build on the fly."""
    return spec_args["dataset"] != "imagenet" or any(
        value not in (None, False) for key, value in spec_args.items() if key != "dataset")


def network_or_options(network: str | None, spec_args: dict,
                       files: bool = True) -> ArchSpec | None:
    """The spec of a NETWORK argument that is a name, or of the spec options; None when
    NETWORK is a file or folder (the caller reads it). Both at once is refused: which would
    win is not obvious. Without `files` (build) NETWORK can only be a name."""
    from pathlib import Path

    from netgen.arch.spec import spec_from_name
    from netgen.jobs.network import resolve

    if network is None:
        return spec_from(**spec_args)
    if spec_given(spec_args):
        raise NetgenError(f"give a network ({network}) or the options that make one (--depth, "
                          "--groups, ...), not both")
    if not files:
        if Path(network).exists():
            raise NetgenError(f"{network}: build makes a network from a name or the options "
                              "(--depth ...), not from a file or folder; `netgen convert` "
                              "turns a file into Caffe or ONNX files (with --like NAME, "
                              "into NAME's build)")
        return spec_from_name(network)
    ref = resolve(network)
    return ref.spec if ref.kind == "name" else None
