"""The architecture spec: everything that decides a network, validated once, up front.

Table 1 (ImageNet) and Section 4.2 (CIFAR-10) of the paper live here as data; the builder
reads them and never branches on a depth.

The residual family beyond the paper is three more fields, each a reference
implementation's own parameter:
- `preact`: the pre-activation unit of He et al., "Identity Mappings in Deep Residual
  Networks" (ECCV 2016): BN-ReLU-conv, the sum left clean. On CIFAR-10 the authors' ResNet-164
  and ResNet-1001 are bottleneck nets of depth 9n+2; on ImageNet their ResNet-200 is 3,24,36,3.
- `groups` and `width_per_group`: torchvision's ResNet parameters, which make ResNeXt
  (Xie et al., CVPR 2017) and the Wide ResNets: a bottleneck's inner width is
  int(planes * width_per_group / 64) * groups and its 3x3 convolution has `groups` groups.
  `--width-factor K` is width_per_group 64K (wide_resnet50_2: 128).

One more field is the ImageNet stem's max pooling, `stem_pool` (STEM_POOLS): "msra", 3x3
stride 2 with no pad rounding up as Caffe does (the published MSRA models), or "torchvision",
pad 1 rounding down (torchvision's and fb.resnet.torch's ResNets). Both give 56x56 at 224,
but their windows sit one pixel apart, so a weight file trained with one computes other
numbers with the other: it is architecture, in the name as -torchpool / -msrapool where it
is not the net's default.

The last, `imagenet_stages`, is the "ResNet-18 on CIFAR-10" of the literature (the
most-starred PyTorch CIFAR code's ResNet18..152): a CIFAR-10 net with Table 1's four stages
and widths (64, 128, 256, 512; strides 1, 2, 2, 2), conv1 3x3 64 stride 1 + BN-ReLU and no
pool1, option B, a bottleneck's stride on its 3x3 (that code's conv2), named
cifar10-resnet18-imagenetstages. It counts as one of the family's (its defaults are theirs).

Squeeze-and-excitation and the "bag of tricks" nets (He et al., CVPR 2019) are four more
fields, appended last: `se_reduction` R (0: none) puts an SE unit (Hu et al., CVPR 2018) on
every residual branch, reducing C channels to `se_width` of them: "floor" is C // R (SENet's
Caffe files, hand-written code), "timm" rounds C / R to a multiple of 8 as timm's
make_divisible does (so seresnet18's 64-channel blocks reduce to 8, not 4); `deep_stem` is
ResNet-C's stem (three 3x3 convolutions, 32, 32, 64, as timm's *c / *d); `avg_down` is
ResNet-D's downsampling projection (2x2 average pooling, stride 2, then the 1x1 stride 1).
Their defaults follow timm: the stride on the 3x3, torchvision's pool1, no conv1 bias, and
timm's layout table with ResNet-26 (2, 2, 2, 2 bottleneck blocks). SE also goes on
pre-activation blocks (the PyTorch CIFAR code's SENet18 is its PreActBlock with SE: the gate
on the branch before the sum, nothing after it).

Three more fields, appended after those, are the stems and heads of the CIFAR code people
train: `final_bn` False drops a pre-activation net's BN-ReLU after its last block (that
code's PreActResNet and SENet have none: -nofinalbn); `stem_bn` gives a CIFAR-10
pre-activation net's conv1 its own BN-ReLU, before the first block's (its SENet18:
-stembn); `stem_kernel` 1 makes a CIFAR-10 conv1 a 1x1 convolution (its ResNeXt29: -stem1x1).
A grouped CIFAR-10 net is the ResNeXt paper's (Xie et al., CVPR 2017, Section 5.3):
ResNeXt-29 has 3 stages of 3 bottleneck blocks of 64, 128 and 256 planes (outputs 256, 512,
1024), depth 9n+2, a 3x3 conv 64 stem: cifar10-resnext29-8x64d and -16x64d are its Table 7
nets (34.4M and 68.1M parameters).

The last field, `iresnet`, is ArcFace's face-recognition backbone (Deng et al., CVPR 2019;
insightface's arcface_torch `iresnet18..200`), the ResNet most deployed to Caffe-only chips:
a 3x3 stride-1 stem with BN and PReLU and no pooling, four stages of the "improved" basic
block (BN, 3x3 conv, BN, PReLU, 3x3 conv with the stride, BN; nothing after the sum), every
stage starting with stride 2, projections where the shape changes, and the embedding head
(BN, fc 512, BN with its scale fixed to 1) instead of pooling and a classifier. Its input is
112 (aligned faces); `num_classes` is the number of identities the train_val classifies.

Two more fields, appended last, are timm's attention ResNets: `eca` puts an ECA unit (Wang
et al., CVPR 2020, timm's EcaModule) where SE would be: global average pooling, a 1-D
convolution of k taps across the C channels (no bias; k from C by timm's rule, eca_kernel),
sigmoid, the channel-wise product (ecaresnet50d, ecaresnet26t); `tiered_stem` is timm's
stem_type="deep_tiered" of the *t nets, ResNet-C's three 3x3 convolutions at 24, 32, 64
instead of 32, 32, 64, always with ResNet-D's projection in timm (resnet50t,
seresnext26t_32x4d), which netgen's names take as the letter t.

Two more, appended last, are timm's Res2Net (Gao et al., TPAMI 2021; timm's Bottle2neck):
`res2net_scale` s and `res2net_width` w make every bottleneck a Res2Net block: a 1x1
convolution to s splits of floor(planes * w / 64) channels each, hierarchical 3x3
convolutions on the first s - 1 splits (from the second on each adds the previous one's
output, except in a stage's first block), the last split passed on (average-pooled 3x3 with
the block's stride and pad 1 in a stage's first block), the concatenation, the closing 1x1
(res2net50-26w-4s). ResNet-RS (Bello et al., 2021; timm's resnetrs*) is one value more of
`stem_pool`, "conv": the stem's max pooling replaced by a 3x3 stride-2 convolution with BN
and ReLU (timm's replace_stem_pool); with ResNet-D's stem and projection and SE of
reduction 4 it is the net netgen names resnetrs50.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

from netgen.errors import NetgenError

# Table 1: depth -> (block kind, blocks per stage conv2_x..conv5_x).
IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
# The ResNeXt paper's CIFAR nets (its Torch code's resnext.lua): planes 64, 128, 256, x4 out.
RESNEXT_CIFAR_WIDTHS = (64, 128, 256)
# conv1 of a CIFAR-10 net: 3x3 (the paper's), or 1x1 (the PyTorch CIFAR code's ResNeXt29).
STEM_KERNELS = (3, 1)
CIFAR_PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
BOTTLENECK_EXPANSION = 4

# The pre-activation paper's ImageNet ResNet-200 (fb.resnet.torch's preresnet.lua); the
# post-activation nets keep Table 1's depths only.
PREACT_IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    **IMAGENET_LAYOUTS, 200: ("bottleneck", (3, 24, 36, 3))}
# With --preact, CIFAR-10 depths 9n+2 from 164 up mean bottleneck blocks (the paper's
# ResNet-164 and ResNet-1001); other depths are 6n+2 basic nets (its ResNet-110).
PREACT_CIFAR_BOTTLENECK_FROM = 164
# torchvision's base width: inner width = int(planes * width_per_group / BASE_WIDTH) * groups.
BASE_WIDTH = 64

DATASETS = ("imagenet", "cifar10")
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C")
STRIDE_PLACEMENTS = ("1x1", "3x3")
DEFAULT_SHORTCUT = {"imagenet": "B", "cifar10": "A"}
FAMILY_SHORTCUT = "B"  # torchvision's and the pre-activation code's: projection where shapes change
DEFAULT_CLASSES = {"imagenet": 1000, "cifar10": 10}
DEFAULT_INPUT = {"imagenet": 224, "cifar10": 32}

# pool1's 3x3 stride-2 max pooling: name -> (pad, rounding of the output size). The builder
# writes FLOOR only where it changes the size (as the readers do: one computation, one IR).
STEM_POOLS: dict[str, tuple[int, str]] = {"msra": (0, "CEIL"), "torchvision": (1, "FLOOR")}
STEM_POOL_SUFFIX = {"msra": "msrapool", "torchvision": "torchpool"}
STEM_POOL_OWNER = {"msra": "MSRA's", "torchvision": "torchvision's"}
STEM_POOL_TEXT = {pool: f"pool1 pad {pad} rounding {'down' if mode == 'FLOOR' else 'up'} "
                        f"({STEM_POOL_OWNER[pool]} stem)" for pool, (pad, mode) in STEM_POOLS.items()}
# ResNet-RS's stem "pooling": a 3x3 stride-2 convolution + BN + ReLU (timm's replace_stem_pool).
# Not a pooling, so not in STEM_POOLS (whose entries are max poolings' pad and rounding).
STEM_POOL_CONV = "conv"
STEM_POOL_CHOICES = (*STEM_POOLS, STEM_POOL_CONV)
STEM_POOL_SUFFIX[STEM_POOL_CONV] = "convpool"
STEM_POOL_TEXT[STEM_POOL_CONV] = ("pool1 a 3x3 stride-2 convolution with BN and ReLU "
                                  "(ResNet-RS's stem)")
# ResNet-RS: timm's resnetrs* are SE nets of reduction 4 (rd_ratio 0.25) on ResNet-D.
RESNETRS_SE_REDUCTION = 4
# Res2Net: timm's Bottle2neck defaults (base_width 26); a scale of 1 is no split at all.
RES2NET_DEFAULT_WIDTH = 26
RES2NET_MIN_SCALE = 2

# SE: the reduced width of a C-channel branch. "floor": C // R; "timm": make_divisible(C / R, 8).
SE_WIDTHS = ("floor", "timm")
SE_DEFAULT_REDUCTION = 16
SE_DIVISOR = 8
# Hand-written CIFAR code divides (C // 16); timm's ImageNet nets round to a multiple of 8.
DEFAULT_SE_WIDTH = {"imagenet": "timm", "cifar10": "floor"}
# ResNet-C's stem (timm's stem_type="deep", stem_width=32): three 3x3 convolutions.
DEEP_STEM_WIDTHS = (32, 32, 64)
# timm's stem_type="deep_tiered" (the *t nets): 3 * (stem_width // 4), stem_width, 2 * stem_width.
TIERED_STEM_WIDTHS = (24, 32, 64)
# timm's layout table: Table 1 plus ResNet-26 (resnet26, resnet26d, seresnext26d_32x4d).
# 200: timm's resnet200d and resnetrs200 (3, 24, 36, 3), as the pre-activation paper's.
TIMM_IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    **IMAGENET_LAYOUTS, 26: ("bottleneck", (2, 2, 2, 2)), 200: ("bottleneck", (3, 24, 36, 3))}

# ArcFace's IResNets (insightface's arcface_torch backbones): depth -> basic blocks per stage.
# The depth is insightface's name for the layout (iresnet200 has 2 + 2 * 98 = 198 weighted
# layers, as its authors call it 200 all the same).
IRESNET_LAYOUTS: dict[int, tuple[int, ...]] = {
    18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
    200: (6, 26, 60, 6)}
IRESNET_INPUT = 112  # aligned 112x112 faces; insightface's fc_scale = 7 * 7 assumes it
IRESNET_EMBEDDING = 512  # insightface's num_features
# Identities of the train_val's classifier unless told: MS1MV3, arcface_torch's configs.
IRESNET_CLASSES = 93_431
IRESNET_NAMES = tuple(f"iresnet{d}" for d in IRESNET_LAYOUTS)

# Hard ceilings so that absurd requests fail with a message instead of exhausting memory.
MAX_LAYERS = 200_000
MAX_INPUT_SIZE = 4096
MAX_WIDTH = 65_536
MAX_CLASSES = 1_000_000

# --imagenet-stages: the name's token, the depth unless told (the literature's CIFAR
# ResNet-18), what its errors call these nets, and the nets `netgen list` shows.
IMAGENET_STAGES_TOKEN = "imagenetstages"
IMAGENET_STAGES_DEPTH = 18
IMAGENET_STAGES_WHAT = "CIFAR-10 --imagenet-stages"
IMAGENET_STAGES_NAMES = tuple(f"cifar10-resnet{d}-{IMAGENET_STAGES_TOKEN}"
                              for d in IMAGENET_LAYOUTS) + (
    f"cifar10-preresnet18-{IMAGENET_STAGES_TOKEN}",
    # the PyTorch CIFAR code's PreActResNet18 and SENet18 (PreActBlock with SE)
    f"cifar10-preresnet18-{IMAGENET_STAGES_TOKEN}-nofinalbn",
    f"cifar10-preseresnet18-{IMAGENET_STAGES_TOKEN}-stembn-nofinalbn")
# The ResNeXt paper's CIFAR-10 nets (Table 7), and the PyTorch CIFAR code's ResNeXt29_2x64d.
RESNEXT_CIFAR_NAMES = ("cifar10-resnext29-8x64d", "cifar10-resnext29-16x64d",
                       "cifar10-resnext29-2x64d-stem1x1")


@dataclass(frozen=True)
class ArchSpec:
    """One network of the family. `shortcut` is None for plain nets."""

    dataset: str
    depth: int
    block: str
    stages: tuple[int, ...]
    widths: tuple[int, ...]
    shortcut: str | None
    num_classes: int
    input_size: int
    stride_in: str = "1x1"
    conv1_bias: bool = False
    preact: bool = False
    groups: int = 1
    width_per_group: int = BASE_WIDTH
    stem_pool: str | None = "msra"  # a STEM_POOLS key; None for CIFAR-10 (no pool1)
    imagenet_stages: bool = False  # CIFAR-10 with Table 1's four stages (IMAGENET_STAGES_NAMES)
    se_reduction: int = 0  # R of the SE units; 0: none
    se_width: str | None = None  # a SE_WIDTHS key where se_reduction, else None
    deep_stem: bool = False  # ResNet-C
    avg_down: bool = False  # ResNet-D's pooled projection
    final_bn: bool = True  # a pre-activation net's BN-ReLU after the last block
    stem_bn: bool = False  # a CIFAR-10 pre-activation net's BN-ReLU after conv1
    stem_kernel: int = 3  # a CIFAR-10 net's conv1: 3x3 or 1x1
    iresnet: bool = False  # ArcFace's IResNet: improved blocks, PReLU, embedding head
    eca: bool = False  # timm's ECA unit on every residual branch
    tiered_stem: bool = False  # timm's deep_tiered stem (24, 32, 64); deep_stem is True too
    res2net_scale: int = 0  # splits of a Res2Net block; 0: plain bottlenecks
    res2net_width: int = 0  # Res2Net's base width (timm's base_width) where res2net_scale

    @property
    def timm(self) -> bool:
        """An SE, ECA, ResNet-C, ResNet-D or Res2Net net: timm's conventions and layout
        table apply."""
        return (self.se_reduction > 0 or self.deep_stem or self.avg_down or self.eca
                or self.res2net_scale > 0)

    @property
    def resnetrs(self) -> bool:
        """timm's ResNet-RS: ResNet-D with the convolution for pool1 and SE of reduction 4,
        named resnetrsD (resnetrs50)."""
        return (self.stem_pool == STEM_POOL_CONV and self.deep_stem and not self.tiered_stem
                and self.avg_down and self.se_reduction == RESNETRS_SE_REDUCTION
                and self.groups == 1 and self.width_per_group == BASE_WIDTH)

    @property
    def res2net_widths(self) -> tuple[int, ...]:
        """Each stage's split width (timm's Bottle2neck: floor(planes * base_width / 64));
        empty for other nets."""
        if not self.res2net_scale:
            return ()
        return tuple(w * self.res2net_width // BASE_WIDTH for w in self.widths)

    @property
    def eca_kernels(self) -> tuple[int, ...]:
        """The kernel of each stage's ECA units (empty without ECA)."""
        return tuple(eca_kernel(c) for c in self.out_channels) if self.eca else ()

    @property
    def stem_widths(self) -> tuple[int, ...]:
        """The deep stem's three convolutions (ResNet-C's or timm's tiered)."""
        return TIERED_STEM_WIDTHS if self.tiered_stem else DEEP_STEM_WIDTHS

    @property
    def se_widths(self) -> tuple[int, ...]:
        """The reduced width of each stage's SE units (empty without SE)."""
        if not self.se_reduction:
            return ()
        return tuple(se_width_of(c, self.se_reduction, self.se_width or "floor")
                     for c in self.out_channels)

    @property
    def output_width(self) -> int:
        """The deploy net's output: the classes, or an IResNet's embedding (its classes are
        the identities the train_val's classifier adds)."""
        return IRESNET_EMBEDDING if self.iresnet else self.num_classes

    @property
    def plain(self) -> bool:
        return self.shortcut is None

    @property
    def family(self) -> bool:
        """A pre-activation, ResNeXt or wide net, an SE or ResNet-C/D net, or a CIFAR-10 net
        with ImageNet stages: one of the paper's descendants."""
        return (is_family(self.preact, self.groups, self.width_per_group, self.timm)
                or self.imagenet_stages or self.iresnet)

    @property
    def block_kind(self) -> str:
        """The builder's block table key: basic, bottleneck, preact-basic, preact-bottleneck,
        improved-basic (IResNet's)."""
        if self.iresnet:
            return f"improved-{self.block}"
        if self.res2net_scale:
            return "res2net"
        return f"preact-{self.block}" if self.preact else self.block

    @property
    def wide_factor(self) -> int | None:
        """K of wide-resnetD-K: a whole multiple of the base width in one group, else None."""
        if self.groups == 1 and self.width_per_group % BASE_WIDTH == 0 \
                and self.width_per_group > BASE_WIDTH:
            return self.width_per_group // BASE_WIDTH
        return None

    @property
    def name(self) -> str:
        """Folder name under generated/: resnet101-B, plain34, cifar10-resnet110-A.

        The family: [wide-](pre)resnet, (pre)resnext-GxWd as torchvision names them
        (resnext50_32x4d -> resnext50-32x4d, wide_resnet50_2 -> wide-resnet50-2), the
        pre-activation nets with `pre` (cifar10-preresnet1001, preresnet200); their shortcut
        letter is written only where it is not their default B. An ImageNet stem pooling
        other than the net's default: -torchpool (resnet18-B-torchpool) or -msrapool
        (resnext50-32x4d-msrapool). CIFAR-10 nets with Table 1's stages:
        -imagenetstages after the depth and layout (cifar10-resnet18-imagenetstages).
        timm's Res2Nets give split width and scale after the depth (res2net50-26w-4s); its
        ResNet-RS is one word for ResNet-D, SE 1/4 and -convpool (resnetrs50).
        """
        prefix = "cifar10-" if self.dataset == "cifar10" else ""
        wide = self.wide_factor
        grouped = wide is None and (self.groups != 1 or self.width_per_group != BASE_WIDTH)
        if self.plain:
            kind = "plain"
        elif self.iresnet:
            kind = "iresnet"
        elif self.res2net_scale:
            kind = "res2net"
        elif self.resnetrs:
            kind = "resnetrs"
        else:
            kind = (("pre" if self.preact else "") + ("se" if self.se_reduction else "")
                    + ("eca" if self.eca else "") + ("resnext" if grouped else "resnet"))
        variant = ("t" if self.tiered_stem else "d" if self.avg_down else "c") \
            if self.deep_stem and not self.resnetrs else ""
        base = f"{prefix}{'wide-' if wide else ''}{kind}{self.depth}{variant}"
        if grouped:
            base += f"-{self.groups}x{self.width_per_group}d"
        if wide:
            base += f"-{wide}"
        if self.res2net_scale:
            base += f"-{self.res2net_width}w-{self.res2net_scale}s"
        if not self.is_paper_layout:
            base += "-" + "-".join(str(n) for n in self.stages) + f"-{self.block}"
        if self.imagenet_stages:
            base += f"-{IMAGENET_STAGES_TOKEN}"
        if not self.plain and not (self.family and self.shortcut == FAMILY_SHORTCUT):
            base += f"-{self.shortcut}"
        if self.stride_in != default_stride_in(self.dataset, self.block, self.preact,
                                               self.groups, self.width_per_group,
                                               self.timm, self.imagenet_stages):
            base += f"-stride{self.stride_in}"
        if self.dataset == "imagenet" and self.conv1_bias != default_conv1_bias(
                self.block, self.stages, self.family):
            base += "-conv1bias" if self.conv1_bias else "-noconv1bias"
        if self.stem_pool is not None and not self.resnetrs \
                and self.stem_pool != default_stem_pool(self.dataset, self.family):
            base += f"-{STEM_POOL_SUFFIX[self.stem_pool]}"
        if self.avg_down and not self.deep_stem:
            base += "-avgdown"
        if self.se_reduction and self.se_reduction != SE_DEFAULT_REDUCTION and not self.resnetrs:
            base += f"-r{self.se_reduction}"
        if self.se_reduction and self.se_width != DEFAULT_SE_WIDTH[self.dataset]:
            base += f"-se{self.se_width}"
        if self.stem_kernel != 3:
            base += f"-stem{self.stem_kernel}x{self.stem_kernel}"
        if self.stem_bn:
            base += "-stembn"
        if not self.final_bn:
            base += "-nofinalbn"
        if self.num_classes != default_classes(self.dataset, self.iresnet):
            base += f"-classes{self.num_classes}"
        if self.input_size != default_input(self.dataset, self.iresnet):
            base += f"-input{self.input_size}"
        return base

    @property
    def is_paper_layout(self) -> bool:
        """The layout the depth alone names: Table 1, Section 4.2's 6n+2, or for
        pre-activation nets that paper's (9n+2 bottleneck CIFAR nets, ResNet-200); with
        ImageNet stages Table 1's (or ResNet-200's)."""
        if self.dataset == "cifar10" and not self.imagenet_stages:
            return self.block == default_cifar_block(self.depth, self.preact, self.groups)
        if self.iresnet:
            return self.block == "basic" and IRESNET_LAYOUTS.get(self.depth) == self.stages
        layouts = imagenet_layouts(self.preact, self.timm)
        return layouts.get(self.depth) == (self.block, self.stages)

    @property
    def out_channels(self) -> tuple[int, ...]:
        factor = BOTTLENECK_EXPANSION if self.block == "bottleneck" else 1
        return tuple(w * factor for w in self.widths)

    @property
    def inner_widths(self) -> tuple[int, ...]:
        """Channels of each stage's inner convolutions: a bottleneck's 1x1 and 3x3
        (torchvision's int(planes * width_per_group / 64) * groups), a basic block's both."""
        if self.block != "bottleneck":
            return self.widths
        return tuple(inner_width(w, self.groups, self.width_per_group) for w in self.widths)

    def to_dict(self) -> dict:
        """summary.json's record. The family's fields appear only for family nets, and
        stem_pool only where it is not MSRA's, so the paper's networks keep the record (and
        generated/) they always had; imagenet_stages only where it is true."""
        data = asdict(self)
        if not self.imagenet_stages:
            del data["imagenet_stages"]
        if not self.family:
            for key in ("preact", "groups", "width_per_group"):
                del data[key]
        if self.stem_pool is None or (not self.family and self.stem_pool == "msra"):
            del data["stem_pool"]
        if not self.se_reduction:
            del data["se_reduction"], data["se_width"]
        if not self.deep_stem:
            del data["deep_stem"]
        if not self.avg_down:
            del data["avg_down"]
        for key, default in (("final_bn", True), ("stem_bn", False), ("stem_kernel", 3)):
            if data[key] == default:
                del data[key]
        if not self.iresnet:
            del data["iresnet"]
        else:
            data["embedding"] = IRESNET_EMBEDDING
        if not self.eca:
            del data["eca"]
        else:
            data["eca_kernels"] = list(self.eca_kernels)
        if not self.tiered_stem:
            del data["tiered_stem"]
        if not self.res2net_scale:
            del data["res2net_scale"], data["res2net_width"]
        else:
            data["res2net_widths"] = list(self.res2net_widths)
        data["stages"] = list(self.stages)
        data["widths"] = list(self.widths)
        data["plain"] = self.plain
        data["name"] = self.name
        return data


def _positive(value: int | None, what: str) -> None:
    if value is not None and value <= 0:
        raise NetgenError(f"{what} must be a positive integer, got {value}")


def is_family(preact: bool, groups: int, width_per_group: int, timm: bool = False) -> bool:
    return preact or groups != 1 or width_per_group != BASE_WIDTH or timm


def default_classes(dataset: str, iresnet: bool = False) -> int:
    """The classifier's width unless told: the dataset's classes, or for an IResNet the
    identities its train_val classifies (IRESNET_CLASSES)."""
    return IRESNET_CLASSES if iresnet else DEFAULT_CLASSES[dataset]


def default_input(dataset: str, iresnet: bool = False) -> int:
    """The input size unless told: 224 / 32, or 112 for the face nets."""
    return IRESNET_INPUT if iresnet else DEFAULT_INPUT[dataset]


def imagenet_layouts(preact: bool, timm: bool = False) -> dict[int, tuple[str, tuple[int, ...]]]:
    """The depths a name may give alone: Table 1, the pre-activation paper's, or timm's."""
    if preact:
        return PREACT_IMAGENET_LAYOUTS
    return TIMM_IMAGENET_LAYOUTS if timm else IMAGENET_LAYOUTS


def se_width_of(channels: int, reduction: int, rule: str) -> int:
    """The SE unit's reduced width: C // R, or timm's make_divisible(C / R, 8):
    max(8, int(v + 4) // 8 * 8), plus 8 where that is below 0.9 v."""
    if rule == "floor":
        return channels // reduction
    value = channels / reduction
    rounded = max(SE_DIVISOR, int(value + SE_DIVISOR / 2) // SE_DIVISOR * SE_DIVISOR)
    if rounded < 0.9 * value:
        rounded += SE_DIVISOR
    return rounded


def eca_kernel(channels: int) -> int:
    """timm's EcaModule(channels): t = int(abs(log2(C) + 1) / 2) (gamma 2, beta 1), made odd
    by adding 1 where it is even, and at least 3 (256 -> 5, 2048 -> 7, 64 -> 3)."""
    t = int(abs(math.log(channels, 2) + 1) / 2)
    return max(t if t % 2 else t + 1, 3)


def inner_width(planes: int, groups: int, width_per_group: int) -> int:
    """torchvision's Bottleneck: int(planes * (base_width / 64.)) * groups."""
    return planes * width_per_group // BASE_WIDTH * groups


def default_stride_in(dataset: str, block: str, preact: bool, groups: int,
                      width_per_group: int, timm: bool = False,
                      imagenet_stages: bool = False) -> str:
    """Where a bottleneck downsamples unless told: on the 3x3 for ResNeXt and Wide ResNets
    (their code and torchvision), for the ImageNet pre-activation nets (fb.resnet.torch's
    preresnet.lua, the authors' ResNet-200), for timm's SE, ResNet-C and ResNet-D nets and for
    CIFAR-10 nets with ImageNet stages (the PyTorch CIFAR code's Bottleneck and
    PreActBottleneck: conv2 has the stride); on the first 1x1 for the paper's Caffe models and
    the pre-activation CIFAR nets (the authors' resnet-1k-layers)."""
    if block != "bottleneck":
        return "1x1"
    if (groups != 1 or width_per_group != BASE_WIDTH or (preact and dataset == "imagenet")
            or timm or imagenet_stages):
        return "3x3"
    return "1x1"


def default_stem_pool(dataset: str, family: bool) -> str | None:
    """MSRA's pool1 for the paper's ImageNet nets (the published Caffe models), torchvision's
    for the family's (torchvision's ResNeXt and Wide ResNets, fb.resnet.torch's ResNet-200);
    None on CIFAR-10, whose stem has no pooling."""
    if dataset != "imagenet":
        return None
    return "torchvision" if family else "msra"


def default_cifar_block(depth: int, preact: bool, groups: int = 1) -> str:
    """basic, but bottleneck for a CIFAR-10 ResNeXt (the ResNeXt paper's ResNeXt-29) and the
    pre-activation paper's 9n+2 nets from 164 up."""
    if groups != 1:
        return "bottleneck"
    if preact and depth >= PREACT_CIFAR_BOTTLENECK_FROM and (depth - 2) % 9 == 0:
        return "bottleneck"
    return "basic"


def depth_of(block: str, stages: tuple[int, ...]) -> int:
    """Weighted layers: conv1 + the block's convolutions + fc (projections not counted)."""
    per_block = 3 if block == "bottleneck" else 2
    return 2 + per_block * sum(stages)


def make_spec(
    dataset: str = "imagenet",
    depth: int | None = None,
    shortcut: str | None = None,
    plain: bool = False,
    stages: tuple[int, ...] | None = None,
    block: str | None = None,
    num_classes: int | None = None,
    input_size: int | None = None,
    stride_in: str | None = None,
    conv1_bias: bool | None = None,
    preact: bool = False,
    groups: int | None = None,
    width_per_group: int | None = None,
    width_factor: int | None = None,
    stem_pool: str | None = None,
    imagenet_stages: bool = False,
    se: int | None = None,
    se_width: str | None = None,
    deep_stem: bool = False,
    avg_down: bool = False,
    final_bn: bool | None = None,
    stem_bn: bool = False,
    stem_kernel: int | None = None,
    iresnet: bool = False,
    eca: bool = False,
    tiered_stem: bool = False,
    res2net_scale: int | None = None,
    res2net_width: int | None = None,
) -> ArchSpec:
    """Validate user choices and fill the paper's defaults; every error names what is allowed.

    stride_in None is the family's default (default_stride_in); width_factor K is
    width_per_group 64K; stem_pool None is default_stem_pool; imagenet_stages gives a
    CIFAR-10 net Table 1's four stages (depth 18 unless told); se R adds SE units of
    reduction R, se_width None is DEFAULT_SE_WIDTH (written as the default wherever both
    rules give the same widths, so that one network has one name). final_bn None is True
    (False: no BN-ReLU after a pre-activation net's last block), stem_bn gives a CIFAR-10
    pre-activation conv1 its BN-ReLU, stem_kernel None is 3 (a CIFAR-10 conv1 of 1x1: 1).
    A grouped CIFAR-10 net is the ResNeXt paper's: planes 64, 128, 256, bottleneck blocks;
    iresnet builds ArcFace's IResNet (IRESNET_LAYOUTS; num_classes is then the train_val's
    identities). eca adds timm's ECA units; tiered_stem is timm's *t stem (deep, 24/32/64),
    with avg_down as timm's *t nets have it. res2net_scale makes the bottlenecks Res2Net
    blocks of that many splits, res2net_width None is RES2NET_DEFAULT_WIDTH (timm's 26);
    stem_pool "conv" is ResNet-RS's strided convolution for pool1.
    """
    _check_timm_options(dataset, plain, preact, shortcut, se, se_width, deep_stem, avg_down)
    _check_attention_options(dataset, plain, preact, se, eca, deep_stem, avg_down, tiered_stem)
    res2net_width = _check_res2net_options(
        res2net_scale, res2net_width, dataset, plain, preact, se, eca, deep_stem or tiered_stem,
        avg_down, groups, width_per_group, width_factor, stride_in, block, iresnet, stem_pool)
    deep_stem = deep_stem or tiered_stem
    final_bn = True if final_bn is None else final_bn
    stem_kernel = 3 if stem_kernel is None else stem_kernel
    _check_cifar_code_options(dataset, preact, final_bn, stem_bn, stem_kernel)
    if iresnet:
        _check_iresnet_options(dataset, plain, preact, se or eca, deep_stem, avg_down,
                               imagenet_stages, groups, width_per_group, width_factor, stride_in,
                               stem_pool, block)
    timm = bool(se) or deep_stem or avg_down or eca or bool(res2net_scale)
    if dataset not in DATASETS:
        raise NetgenError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    if block is not None and block not in BLOCKS:
        raise NetgenError(f"unknown block {block!r}; allowed: {', '.join(BLOCKS)}")
    if shortcut is not None and shortcut.upper() not in SHORTCUTS:
        raise NetgenError(f"unknown shortcut option {shortcut!r}; allowed: A, B, C")
    if stride_in is not None and stride_in not in STRIDE_PLACEMENTS:
        raise NetgenError(f"unknown stride placement {stride_in!r}; allowed: 1x1, 3x3")
    if stem_pool is not None and stem_pool not in STEM_POOL_CHOICES:
        raise NetgenError(f"unknown stem pooling {stem_pool!r}; allowed: "
                          + ", ".join(STEM_POOL_CHOICES) + " (pad 0 rounding up as MSRA's Caffe "
                          "models, pad 1 rounding down as torchvision, or ResNet-RS's 3x3 "
                          "stride-2 convolution)")
    if stem_pool is not None and dataset != "imagenet":
        raise NetgenError("--stem-pool applies to ImageNet nets only: CIFAR-10 nets have no "
                          "pool1 (their stem is conv1 alone); drop --stem-pool")
    if imagenet_stages and dataset != "cifar10":
        raise NetgenError("--imagenet-stages gives a CIFAR-10 net (3x3 stem, no pool1) Table 1's "
                          "four stages; ImageNet nets have them already: add --dataset cifar10 "
                          "or drop --imagenet-stages")
    if plain and shortcut is not None:
        raise NetgenError("--plain nets have no shortcuts: drop --shortcut, or drop --plain")
    if plain and preact:
        raise NetgenError("--preact moves BN and ReLU around a residual unit's shortcut and "
                          "sum; a --plain net has neither: drop one of them")
    for value, what in ((depth, "depth"), (num_classes, "number of classes"),
                        (input_size, "input size"), (groups, "--groups"),
                        (width_per_group, "--width-per-group"), (width_factor, "--width-factor")):
        _positive(value, what)
    if width_factor is not None and width_per_group is not None:
        raise NetgenError(f"--width-factor {width_factor} means --width-per-group "
                          f"{BASE_WIDTH * width_factor}; give one of them")
    if stages is not None:
        if not stages:
            raise NetgenError("--stages needs at least one stage, e.g. 3,4,6,3")
        for count in stages:
            _positive(count, "every stage's block count")
    groups = groups or 1
    width_per_group = width_per_group or BASE_WIDTH * (width_factor or 1)
    widened = groups != 1 or width_per_group != BASE_WIDTH
    family = is_family(preact, groups, width_per_group, timm) or imagenet_stages
    shortcut = None if plain else (shortcut or (FAMILY_SHORTCUT if family
                                                else DEFAULT_SHORTCUT[dataset])).upper()
    num_classes = num_classes or default_classes(dataset, iresnet)
    input_size = input_size or default_input(dataset, iresnet)
    if num_classes > MAX_CLASSES:
        raise NetgenError(f"number of classes {num_classes} is over the limit of {MAX_CLASSES}")
    if input_size > MAX_INPUT_SIZE:
        raise NetgenError(f"input size {input_size} is over the limit of {MAX_INPUT_SIZE}")

    if iresnet:
        block, stages, depth = _iresnet_layout(depth, stages)
        widths, conv1_bias = IMAGENET_WIDTHS, bool(conv1_bias)
    elif imagenet_stages:
        if depth is None and stages is None:
            depth = IMAGENET_STAGES_DEPTH
        block, stages, depth = _imagenet_layout(depth, stages, block, preact,
                                                IMAGENET_STAGES_WHAT)
        widths, conv1_bias = IMAGENET_WIDTHS, False
    elif dataset == "cifar10":
        block, stages, depth = _cifar_layout(depth, stages, block, preact, groups)
        widths, conv1_bias = (CIFAR_WIDTHS if groups == 1 else RESNEXT_CIFAR_WIDTHS), False
    else:
        block, stages, depth = _imagenet_layout(depth, stages, block, preact, timm=timm)
        widths = IMAGENET_WIDTHS
        if conv1_bias is None:
            conv1_bias = default_conv1_bias(block, stages, family)
    if widened and block != "bottleneck":
        raise NetgenError("--groups, --width-per-group and --width-factor widen a bottleneck's "
                          "3x3 convolution; basic blocks have none (as torchvision: BasicBlock "
                          "only supports groups=1 and base_width=64): use a bottleneck layout")
    if stride_in is None:
        stride_in = default_stride_in(dataset, block, preact, groups, width_per_group, timm,
                                      imagenet_stages)
    if stride_in == "3x3" and block != "bottleneck":
        raise NetgenError("--stride-in 3x3 applies to bottleneck blocks only (depth 50, 101, 152)")
    for planes in widths:
        inner = inner_width(planes, groups, width_per_group) if block == "bottleneck" else planes
        if inner < 1:
            raise NetgenError(f"--width-per-group {width_per_group} leaves no channels in a "
                              f"{planes}-plane bottleneck (int({planes} * {width_per_group} / "
                              f"{BASE_WIDTH}) = 0); use at least {-(-BASE_WIDTH // planes)}")
        if inner > MAX_WIDTH:
            raise NetgenError(f"a bottleneck's inner width of {inner} channels ({groups} groups "
                              f"x {inner // groups}) is over the limit of {MAX_WIDTH}")
    if stem_pool is None and not iresnet:  # an IResNet's stem has no pooling
        stem_pool = default_stem_pool(dataset, family)
    spec = ArchSpec(dataset, depth, block, stages, widths, shortcut, num_classes, input_size,
                    stride_in, conv1_bias, preact, groups, width_per_group, stem_pool,
                    imagenet_stages, se or 0, None, deep_stem, avg_down, final_bn, stem_bn,
                    stem_kernel, iresnet, eca, tiered_stem, res2net_scale or 0,
                    res2net_width)
    if se:
        spec = _with_se_width(spec, se_width or DEFAULT_SE_WIDTH[dataset])
    _check_size(spec)
    return spec


def _check_timm_options(dataset: str, plain: bool, preact: bool, shortcut: str | None,
                        se: int | None, se_width: str | None, deep_stem: bool,
                        avg_down: bool) -> None:
    """--se, --se-width, --deep-stem and --avg-down: what they combine with."""
    _positive(se, "--se (the reduction ratio R)")
    if se_width is not None and se_width not in SE_WIDTHS:
        raise NetgenError(f"unknown SE width rule {se_width!r}; allowed: floor (C // R, as "
                          "SENet's Caffe files) or timm (C / R rounded to a multiple of 8)")
    if se_width is not None and not se:
        raise NetgenError("--se-width sets the SE units' reduced width; give --se R too")
    if se and plain:
        raise NetgenError("--se puts an SE unit before each residual addition; a --plain net "
                          "has none: drop one of them")
    tricks = deep_stem or avg_down
    if tricks and preact:
        raise NetgenError("--deep-stem and --avg-down build post-activation nets (timm's); "
                          "drop --preact or them")
    if deep_stem and dataset != "imagenet":
        raise NetgenError("--deep-stem replaces the ImageNet 7x7 stem; CIFAR-10 nets have a "
                          "single 3x3 conv1: drop --deep-stem")
    if avg_down and (plain or (shortcut or "").upper() == "A"):
        raise NetgenError("--avg-down puts average pooling before a downsampling projection; "
                          "option A and plain nets have no projection: use -s B or C")


def _check_attention_options(dataset: str, plain: bool, preact: bool, se: int | None,
                             eca: bool, deep_stem: bool, avg_down: bool,
                             tiered_stem: bool) -> None:
    """--eca and --tiered-stem: timm's ECA nets and *t stems, and what they combine with."""
    if eca and se:
        raise NetgenError("--eca and --se are two channel gates for the same place (before "
                          "each residual addition); give one of them")
    if eca and plain:
        raise NetgenError("--eca puts an ECA unit before each residual addition; a --plain net "
                          "has none: drop one of them")
    if eca and preact:
        raise NetgenError("--eca builds post-activation nets (timm's); drop --preact or --eca")
    if tiered_stem and (dataset != "imagenet" or preact):
        raise NetgenError("--tiered-stem replaces the ImageNet 7x7 stem of a post-activation "
                          "net (timm's *t); drop it for CIFAR-10 and --preact nets")
    if tiered_stem and not avg_down:
        raise NetgenError("--tiered-stem is the stem of timm's *t nets, which all have "
                          "ResNet-D's pooled projection: add --avg-down")


def _check_res2net_options(scale: int | None, width: int | None, dataset: str, plain: bool,
                           preact: bool, se: int | None, eca: bool, deep_stem: bool,
                           avg_down: bool, groups: int | None, width_per_group: int | None,
                           width_factor: int | None, stride_in: str | None, block: str | None,
                           iresnet: bool, stem_pool: str | None) -> int:
    """--res2net-scale and --res2net-width: timm's Res2Net (res2net50_26w_4s ...), whose
    stem, projection and block wiring are fixed; returns the width (0 without Res2Net)."""
    _positive(scale, "--res2net-scale")
    _positive(width, "--res2net-width")
    if width is not None and not scale:
        raise NetgenError("--res2net-width sets the width of a Res2Net block's splits; give "
                          "--res2net-scale S too")
    if not scale:
        return 0
    if scale < RES2NET_MIN_SCALE:
        raise NetgenError(f"--res2net-scale {scale}: a Res2Net block splits its channels into "
                          f"at least {RES2NET_MIN_SCALE} scales (one is a plain bottleneck)")
    given = [flag for flag, on in (
        ("--dataset cifar10", dataset != "imagenet"), ("--plain", plain), ("--preact", preact),
        ("--se", bool(se)), ("--eca", eca), ("--deep-stem/--tiered-stem", deep_stem),
        ("--avg-down", avg_down), ("--iresnet", iresnet),
        ("--groups/--width-per-group/--width-factor",
         groups not in (None, 1) or width_per_group not in (None, BASE_WIDTH)
         or bool(width_factor)),
        ("--stride-in 1x1", stride_in == "1x1"), ("--block basic", block == "basic"),
        ("--stem-pool conv", stem_pool == STEM_POOL_CONV)) if on]
    if given:
        raise NetgenError(f"--res2net-scale builds timm's Res2Net (7x7 stem, Res2Net "
                          f"bottlenecks, strides on their 3x3s); it does not take "
                          f"{', '.join(given)}")
    return width or RES2NET_DEFAULT_WIDTH


def _check_cifar_code_options(dataset: str, preact: bool, final_bn: bool, stem_bn: bool,
                              stem_kernel: int) -> None:
    """--no-final-bn, --stem-bn and --stem-kernel: the stems and heads of the CIFAR code."""
    if not final_bn and not preact:
        raise NetgenError("--no-final-bn drops a pre-activation net's BN-ReLU after its last "
                          "block; a post-activation net has none: add --preact")
    if stem_bn and not (preact and dataset == "cifar10"):
        raise NetgenError("--stem-bn gives a CIFAR-10 pre-activation net's conv1 a BN-ReLU of "
                          "its own (other nets' stems have one already): use it with "
                          "--dataset cifar10 --preact")
    if stem_kernel not in STEM_KERNELS:
        raise NetgenError(f"--stem-kernel {stem_kernel}: allowed 3 (the paper's 3x3 conv1) "
                          "or 1 (a 1x1 conv1, the PyTorch CIFAR code's ResNeXt29)")
    if stem_kernel != 3 and dataset != "cifar10":
        raise NetgenError("--stem-kernel sets a CIFAR-10 net's conv1; ImageNet nets have the "
                          "7x7 (or --deep-stem): add --dataset cifar10")


def _check_iresnet_options(dataset, plain, preact, se, deep_stem, avg_down, imagenet_stages,
                           groups, width_per_group, width_factor, stride_in, stem_pool,
                           block) -> None:
    """--iresnet is ArcFace's network as insightface writes it: its stem, block and head are
    fixed, so the options that change those of the other nets do not combine with it."""
    given = [flag for flag, on in (
        ("--dataset cifar10", dataset != "imagenet"), ("--plain", plain), ("--preact", preact),
        ("--se", bool(se)), ("--deep-stem", deep_stem), ("--avg-down", avg_down),
        ("--imagenet-stages", imagenet_stages),
        ("--groups/--width-per-group/--width-factor",
         groups not in (None, 1) or width_per_group not in (None, BASE_WIDTH)
         or bool(width_factor)),
        ("--stride-in", stride_in is not None), ("--stem-pool", stem_pool is not None),
        ("--block bottleneck", block not in (None, "basic"))) if on]
    if given:
        raise NetgenError(f"--iresnet builds ArcFace's IResNet (3x3 stem with PReLU, improved "
                          f"basic blocks, embedding head); it does not take {', '.join(given)}")


def _iresnet_layout(depth, stages) -> tuple[str, tuple[int, ...], int]:
    """insightface's layouts by depth (IRESNET_LAYOUTS); four --stages of basic blocks name
    their depth where the table has them (6,26,60,6 is iresnet200), else 2 + 2 x blocks."""
    if stages is None:
        depth = 50 if depth is None else depth
        if depth not in IRESNET_LAYOUTS:
            allowed = ", ".join(str(d) for d in IRESNET_LAYOUTS)
            raise NetgenError(f"IResNet depth {depth} is not one of insightface's (allowed: "
                              f"{allowed}); give --stages for another layout")
        return "basic", IRESNET_LAYOUTS[depth], depth
    if len(stages) != len(IMAGENET_WIDTHS):
        raise NetgenError(f"IResNets have 4 stages, got {len(stages)}")
    named = next((d for d, layout in IRESNET_LAYOUTS.items() if layout == tuple(stages)), None)
    if named is not None and depth in (None, named):
        return "basic", tuple(stages), named
    return _custom_layout(depth, "basic", stages)


def _with_se_width(spec: ArchSpec, rule: str) -> ArchSpec:
    """`spec` with its SE width rule; the dataset's default where both rules agree on every
    stage, and an error where a branch would reduce to no channel."""
    default = DEFAULT_SE_WIDTH[spec.dataset]
    widths = {r: replace(spec, se_width=r).se_widths for r in SE_WIDTHS}
    if widths[rule] == widths[default]:
        rule = default
    for channels, reduced in zip(spec.out_channels, widths[rule]):
        if reduced < 1:
            raise NetgenError(f"--se {spec.se_reduction} leaves no channel in the SE unit of a "
                              f"{channels}-channel block ({channels} // {spec.se_reduction} = 0);"
                              f" use R <= {channels} or --se-width timm")
    return replace(spec, se_width=rule)


def _cifar_layout(depth, stages, block, preact, groups: int = 1
                  ) -> tuple[str, tuple[int, ...], int]:
    """Section 4.2's 3 stages of n blocks: depth 6n+2 (basic) or 9n+2 (bottleneck; a
    grouped net's default, ResNeXt-29 is n = 3)."""
    if stages is not None:
        if len(stages) != 3 or len(set(stages)) != 1:
            raise NetgenError("CIFAR-10 nets have 3 stages of n blocks each; use --depth 6n+2 "
                              "(basic) or 9n+2 (bottleneck)")
        block = block or "basic"
        return _custom_layout(depth, block, stages)
    depth = (29 if groups != 1 else 20) if depth is None else depth
    block = block or default_cifar_block(depth, preact, groups)
    per_block = 3 if block == "bottleneck" else 2
    if depth < 2 + 3 * per_block or (depth - 2) % (3 * per_block):
        if block == "bottleneck":
            raise NetgenError(f"CIFAR-10 bottleneck nets have depth 9n+2 with n >= 1 "
                              f"(11, 164, 1001, ...), got {depth}")
        hint = ""
        if preact and (depth - 2) % 9 == 0 and depth > 2:
            hint = "; for a 9n+2 bottleneck net add --block bottleneck"
        raise NetgenError(
            f"CIFAR-10 depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...),"
            f" got {depth}{hint}")
    n = (depth - 2) // (3 * per_block)
    return block, (n, n, n), depth


def _custom_layout(depth, block, stages) -> tuple[str, tuple[int, ...], int]:
    """A --stages layout: its depth follows from the blocks, and a --depth must agree."""
    derived = depth_of(block, stages)
    if depth is not None and depth != derived:
        raise NetgenError(f"--depth {depth} contradicts --stages and --block "
                          f"(they give depth {derived}); drop --depth")
    return block, tuple(stages), derived


def _imagenet_layout(depth, stages, block, preact,
                     what: str = "ImageNet", timm: bool = False
                     ) -> tuple[str, tuple[int, ...], int]:
    """Table 1's layouts (ImageNet, and CIFAR-10 with --imagenet-stages: `what` says which;
    timm's layout table for its SE, ResNet-C and ResNet-D nets)."""
    if stages is None:
        depth = 50 if depth is None else depth
        layouts = imagenet_layouts(preact, timm)
        if depth not in layouts:
            allowed = ", ".join(str(d) for d in layouts)
            where = ("Table 1 or the pre-activation paper" if preact
                     else "timm's layouts" if timm else "Table 1")
            raise NetgenError(f"{what} depth {depth} is not in {where} (allowed: {allowed});"
                              " give --stages and --block for another layout")
        table_block, stages = layouts[depth]
        if block is not None and block != table_block:
            raise NetgenError(f"ResNet-{depth} uses {table_block} blocks in Table 1; "
                              "give --stages for another layout")
        return table_block, tuple(stages), depth
    if len(stages) != len(IMAGENET_WIDTHS):
        raise NetgenError(f"{what} nets have 4 stages (conv2_x..conv5_x), got {len(stages)}")
    block = block or "bottleneck"
    return _custom_layout(depth, block, stages)


def default_conv1_bias(block: str, stages: tuple[int, ...], family: bool = False) -> bool:
    """Whether conv1 has a bias unless the user says otherwise: for the ResNet-50 layout.

    The published MSRA ResNet-50 caffemodel has a biased conv1 (2 blobs there); 101 and 152
    do not. Every variant of the 50 layout (A, B, C, plain, stride on the 3x3) keeps the
    bias so that they differ from the published model only in what their name says;
    --no-conv1-bias gives the bias-free counts of DESIGN.md (e.g. 25,557,032 for B).
    The family (pre-activation, ResNeXt, Wide) has no Caffe file whose quirk to keep: no bias,
    as torchvision and the authors' Torch code.
    """
    return not family and (block, stages) == IMAGENET_LAYOUTS[50]


def _check_size(spec: ArchSpec) -> None:
    layers = (8 if spec.block == "bottleneck" else 6) * sum(spec.stages) * 2 + 16
    if spec.se_reduction:  # pool, down, ReLU, up, Sigmoid; Flatten and Scale in stock Caffe
        layers += 7 * sum(spec.stages)
    if spec.eca:  # pool, Reshape, conv, Sigmoid, Reshape; Flatten and Scale in stock Caffe
        layers += 7 * sum(spec.stages)
    if spec.res2net_scale:  # Slice, a conv-BN-Scale-ReLU and a sum per split, pool, Concat
        layers += 5 * spec.res2net_scale * sum(spec.stages)
    if layers > MAX_LAYERS:
        raise NetgenError(f"that network would have about {layers} layers; the limit is "
                          f"{MAX_LAYERS} (use fewer blocks per stage)")
    size = spec.input_size
    # conv1 and pool1 halve twice on ImageNet; then each stage after the first halves once
    # (an IResNet's stem keeps the size and every stage halves).
    size = size if spec.dataset == "cifar10" or spec.iresnet else (size + 1) // 2 // 2
    halvings = len(spec.stages) - (0 if spec.iresnet else 1)
    if size < 2 ** halvings:
        raise NetgenError(f"input size {spec.input_size} is too small for {len(spec.stages)} "
                          f"stages (the last stage would be smaller than 1x1)")


NAME_EXAMPLES = ("resnet50-B", "resnet18-A", "plain34", "cifar10-resnet20-A", "cifar10-plain20",
                 "resnet50-B-stride3x3", "resnet50-B-noconv1bias", "resnet26-2-2-2-2-bottleneck-B",
                 "resnet18-A-classes100-input112", "cifar10-preresnet164", "preresnet200",
                 "resnext50-32x4d", "wide-resnet50-2", "resnet18-B-torchpool",
                 "resnext50-32x4d-msrapool", "cifar10-resnet18-imagenetstages", "seresnet50",
                 "seresnext50-32x4d-msrapool", "resnet50d", "resnet26d", "resnet50c",
                 "seresnet18-sefloor", "cifar10-resnext29-8x64d",
                 "cifar10-preresnet18-imagenetstages-nofinalbn", "iresnet50", "ecaresnet50d",
                 "resnet50t", "res2net50-26w-4s", "resnetrs50")
# The family: names that only take the shortcut letter where it is not B, see ArchSpec.name.
FAMILY_NAMES = ("cifar10-preresnet164", "cifar10-preresnet1001", "preresnet200",
                "resnext50-32x4d", "resnext101-32x8d", "resnext101-64x4d", "wide-resnet50-2",
                "wide-resnet101-2",
                # timm's SE nets, and SENet's Caffe layout of the same (stride on the first
                # 1x1 of SE-ResNet, MSRA's pool1); the bag of tricks' ResNet-C and -D.
                "seresnet50", "seresnet101", "seresnet152", "seresnext50-32x4d",
                "seresnext101-32x4d", "seresnet50-stride1x1-msrapool",
                "seresnet101-stride1x1-msrapool", "seresnet152-stride1x1-msrapool",
                "seresnext50-32x4d-msrapool", "seresnext101-32x4d-msrapool",
                "resnet18d", "resnet26d", "resnet34d", "resnet50d", "resnet101d", "resnet152d",
                "resnet50c",
                # timm's ECA nets and tiered-stem (*t) nets
                "ecaresnet26t", "ecaresnet50d", "ecaresnet101d", "resnet50t",
                "seresnext26t-32x4d",
                # timm's Res2Nets and ResNet-RS nets
                "res2net50-26w-4s", "res2net50-48w-2s", "res2net50-14w-8s", "res2net50-26w-6s",
                "res2net50-26w-8s", "res2net101-26w-4s", "resnetrs50", "resnetrs101",
                "resnetrs152", "resnetrs200") + RESNEXT_CIFAR_NAMES
_NAME = re.compile(
    r"^(?P<cifar>cifar10-)?(?P<wide>wide-)?"
    r"(?P<kind>preseresnext|preseresnet|preresnext|preresnet|seresnext|seresnet|ecaresnext|ecaresnet"
    r"|resnext|iresnet|res2net|resnetrs|resnet"
    r"|plain)(?P<depth>\d+)"
    r"(?P<variant>[cdt])?"
    r"(?:-(?P<groups>\d+)x(?P<wpg>\d+)d)?(?(wide)-(?P<factor>\d+))"
    r"(?:-(?P<r2width>\d+)w-(?P<r2scale>\d+)s)?"
    r"(?:-(?P<stages>\d+(?:-\d+)*)-(?P<block>basic|bottleneck))?"
    r"(?:-(?P<istages>imagenetstages))?"
    r"(?:-(?P<shortcut>[ABC]))?(?:-stride(?P<stride>1x1|3x3))?(?:-(?P<bias>conv1bias|noconv1bias))?"
    r"(?:-(?P<pool>torchpool|msrapool|convpool))?(?P<avgdown>-avgdown)?(?:-r(?P<se_r>\d+))?"
    r"(?:-se(?P<se_width>floor|timm))?(?:-stem(?P<stem_kernel>\d+)x(?P=stem_kernel))?"
    r"(?P<stembn>-stembn)?(?P<nofinalbn>-nofinalbn)?"
    r"(?:-classes(?P<classes>\d+))?(?:-input(?P<input>\d+))?$")


_STEM_POOL_OF_SUFFIX = {suffix: pool for pool, suffix in STEM_POOL_SUFFIX.items()}


def is_network_name(name: str) -> bool:
    """Whether `name` has the form of ArchSpec.name (it may still name an invalid net)."""
    return _NAME.match(name) is not None


def spec_from_name(name: str) -> ArchSpec:
    """The inverse of ArchSpec.name: resnet50-B, plain34, cifar10-resnet20-A, resnext50-32x4d ..."""
    match = _NAME.match(name)
    if not match:
        raise NetgenError(f"{name!r} is not a network name; names look like "
                          + ", ".join(NAME_EXAMPLES))
    g = match.groupdict()
    plain = g["kind"] == "plain"
    if plain and g["shortcut"]:
        raise NetgenError(f"{name!r}: plain nets have no shortcut option; write "
                          f"{name[:match.start('shortcut') - 1]}")
    se_kind = g["kind"].startswith(("se", "prese"))
    resnetrs = g["kind"] == "resnetrs"  # ResNet-D, SE 1/4, the stem's strided convolution
    if (g["se_r"] or g["se_width"]) and not se_kind:
        raise NetgenError(f"{name!r}: -rR and -seWIDTH describe SE units; an SE net's name "
                          f"starts with se (seresnet50-r8)")
    if g["variant"] in ("d", "t") and g["avgdown"]:
        raise NetgenError(f"{name!r}: the {g['variant']} of ResNet-D (and of timm's *t) already "
                          f"means -avgdown; drop it")
    if (g["kind"] == "res2net") != bool(g["r2scale"]):
        raise NetgenError(f"{name!r}: a Res2Net name, and only one, gives the split width and "
                          f"the scale after the depth, e.g. res2net50-26w-4s")
    if "resnext" in g["kind"] and not g["groups"]:
        raise NetgenError(f"{name!r}: a ResNeXt name gives cardinality and width per group "
                          f"after the depth, e.g. resnext50-32x4d")
    stages = tuple(int(n) for n in g["stages"].split("-")) if g["stages"] else None
    bias = None if g["bias"] is None else g["bias"] == "conv1bias"
    try:
        spec = make_spec(dataset="cifar10" if g["cifar"] else "imagenet", depth=int(g["depth"]),
                         shortcut=g["shortcut"], plain=plain, stages=stages, block=g["block"],
                         stride_in=g["stride"], conv1_bias=bias,
                         num_classes=int(g["classes"]) if g["classes"] else None,
                         input_size=int(g["input"]) if g["input"] else None,
                         preact=g["kind"].startswith("pre"),
                         groups=int(g["groups"]) if g["groups"] else None,
                         width_per_group=int(g["wpg"]) if g["wpg"] else None,
                         width_factor=int(g["factor"]) if g["factor"] else None,
                         stem_pool=_STEM_POOL_OF_SUFFIX.get(
                             g["pool"], STEM_POOL_CONV if resnetrs else None),
                         imagenet_stages=bool(g["istages"]),
                         se=(int(g["se_r"]) if g["se_r"] else SE_DEFAULT_REDUCTION)
                         if se_kind else RESNETRS_SE_REDUCTION if resnetrs else None,
                         se_width=g["se_width"],
                         deep_stem=g["variant"] is not None or resnetrs,
                         avg_down=g["variant"] in ("d", "t") or bool(g["avgdown"]) or resnetrs,
                         eca=g["kind"].startswith("eca"), tiered_stem=g["variant"] == "t",
                         final_bn=not g["nofinalbn"], stem_bn=bool(g["stembn"]),
                         stem_kernel=int(g["stem_kernel"]) if g["stem_kernel"] else None,
                         iresnet=g["kind"] == "iresnet",
                         res2net_scale=int(g["r2scale"]) if g["r2scale"] else None,
                         res2net_width=int(g["r2width"]) if g["r2width"] else None)
    except NetgenError as exc:
        raise NetgenError(f"{name!r}: {exc}") from None
    # The paper's residual nets may leave out their shortcut letter (resnet50 is resnet50-B);
    # every other name must be the canonical one, so that one net has one name.
    strict = bool(g["shortcut"] or plain or spec.family or g["wide"] or g["groups"]
                  or g["kind"] != "resnet")
    if strict and spec.name != name:
        raise NetgenError(f"{name!r} is not a canonical network name; did you mean {spec.name!r}?")
    return spec
