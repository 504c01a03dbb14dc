"""The figures the paper prints (and the exact counts behind them), as data.

Table 1 gives multiply-adds to one decimal (x 10^9); for 18/34 they are the parameter-free
nets (option A and plain), for 50/101/152 option B. The paper rounds (1.795 -> 1.8, 7.570 ->
7.6) except for ResNet-50, whose 3.858 is printed 3.8 (cut off), so a figure matches when it
is the rounded or the cut-off value at the printed precision. Table 6 gives CIFAR-10 parameters to the
precision printed (0.27M ... 19.4M). The exact integers and three-decimal figures are
netgen's DESIGN.md reference counts: parameters = conv weights + BN scale/shift + fc weights
and bias, multiply-adds = convolutions + fc, stride on the first 1x1 of a bottleneck (the
torchvision "v1.5" placement on the 3x3 changes only multiply-adds).

A figure applies only to the paper's networks: Table 1 layouts or CIFAR 6n+2 with the default
classes and input size. A conv1 bias (the published ResNet-50 has one) adds its 64 (or 16)
values to the bias-free parameter figures.

The family's figures (FAMILY_FIGURES) apply to their canonical names (with either stem
pooling, which changes no count): torchvision's
parameter counts and multiply-adds (its `_ops`, in G) for ResNeXt and the Wide ResNets, the
ResNeXt paper's 4.2 x 10^9 for ResNeXt-50 (Table 1), and the pre-activation paper's 1.7M and
10.2M for CIFAR ResNet-164 and ResNet-1001, which count convolution and fc weights only:
their BatchNorms' scale and shift (24,224 and 149,216 values, one pair per channel of every
BN) are added to those figures as an offset, as a conv1 bias is to Table 6's. The CIFAR-10
nets with ImageNet stages (cifar10-resnet18-imagenetstages ...) have the parameter counts of
the PyTorch CIFAR code's ResNet18..152 (torch's count: conv and fc weights, fc bias, BN
weight and bias, as netgen counts); its PreActResNet18 has no final BN-ReLU, so
cifar10-preresnet18-imagenetstages has no figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from netgen.arch.spec import (DEFAULT_CLASSES, DEFAULT_INPUT, STEM_POOL_CONV, STEM_POOLS,
                              ArchSpec, default_stem_pool)

PLAIN = "plain"

# (depth, option) -> printed multiply-adds x 10^9, Table 1.
TABLE1_MACS: dict[tuple[int, str], str] = {
    (18, "A"): "1.8", (18, PLAIN): "1.8",
    (34, "A"): "3.6", (34, PLAIN): "3.6",
    (50, "B"): "3.8", (101, "B"): "7.6", (152, "B"): "11.3",
}

# CIFAR-10 depth -> Table 6 parameters (millions, as printed); options A and plain.
TABLE6_PARAMS: dict[int, str] = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7",
                                 1202: "19.4"}

# (dataset, depth, option) -> exact parameters, without a conv1 bias.
EXACT_PARAMS: dict[tuple[str, int, str], int] = {
    ("imagenet", 18, "A"): 11_515_688, ("imagenet", 18, PLAIN): 11_515_688,
    ("imagenet", 18, "B"): 11_689_512, ("imagenet", 18, "C"): 12_043_816,
    ("imagenet", 34, "A"): 21_623_848, ("imagenet", 34, PLAIN): 21_623_848,
    ("imagenet", 34, "B"): 21_797_672, ("imagenet", 34, "C"): 22_716_840,
    ("imagenet", 50, "A"): 22_780_456, ("imagenet", 50, "B"): 25_557_032,
    ("imagenet", 101, "A"): 41_772_584, ("imagenet", 101, "B"): 44_549_160,
    ("imagenet", 152, "A"): 57_416_232, ("imagenet", 152, "B"): 60_192_808,
    ("cifar10", 20, "A"): 269_722, ("cifar10", 32, "A"): 464_154,
    ("cifar10", 44, "A"): 658_586, ("cifar10", 56, "A"): 853_018,
    ("cifar10", 110, "A"): 1_727_962, ("cifar10", 1202, "A"): 19_421_274,
}
for (_dataset, _depth, _option), _count in list(EXACT_PARAMS.items()):
    if _dataset == "cifar10":  # plain CIFAR nets have the same weights as option A
        EXACT_PARAMS[(_dataset, _depth, PLAIN)] = _count

# (dataset, depth, option, stride placement) -> multiply-adds as printed, with unit.
EXACT_MACS: dict[tuple[str, int, str, str], tuple[str, float]] = {
    ("imagenet", 18, "A", "1x1"): ("1.795", 1e9), ("imagenet", 18, PLAIN, "1x1"): ("1.795", 1e9),
    ("imagenet", 18, "B", "1x1"): ("1.814", 1e9),
    ("imagenet", 34, "A", "1x1"): ("3.644", 1e9), ("imagenet", 34, PLAIN, "1x1"): ("3.644", 1e9),
    ("imagenet", 34, "B", "1x1"): ("3.664", 1e9),
    ("imagenet", 50, "B", "1x1"): ("3.858", 1e9), ("imagenet", 101, "B", "1x1"): ("7.570", 1e9),
    ("imagenet", 152, "B", "1x1"): ("11.282", 1e9),
    ("imagenet", 50, "B", "3x3"): ("4.089", 1e9), ("imagenet", 101, "B", "3x3"): ("7.801", 1e9),
    ("imagenet", 152, "B", "3x3"): ("11.514", 1e9),
}
for _depth, _text in {20: "40.6", 32: "68.9", 44: "97.2", 56: "125.5", 110: "252.9",
                      1202: "2,829"}.items():
    for _option in ("A", PLAIN):
        EXACT_MACS[("cifar10", _depth, _option, "1x1")] = (_text, 1e6)


@dataclass(frozen=True)
class Figure:
    """One printed figure and what it is compared with."""

    quantity: str  # "parameters" or "multiply_adds"
    printed: str   # as printed: "3.8", "0.27", "25,557,032"
    unit: float    # 1e9 for "x 10^9", 1e6 for "M", 1 for exact integers
    source: str    # "Table 1", "Table 6", "exact count"
    offset: int = 0  # values the printed figure leaves out (a conv1 bias) and the count has
    offset_what: str = "conv1 bias"

    def expected_text(self) -> str:
        suffix = {1e9: " G", 1e6: " M", 1: ""}[self.unit]
        extra = f" + {self.offset:,} ({self.offset_what})" if self.offset else ""
        return f"{self.printed}{suffix}{extra} ({self.source})"

    def _decimals(self) -> int:
        text = self.printed.replace(",", "")
        return len(text.split(".")[1]) if "." in text else 0

    def _format(self, scaled: float) -> str:
        text = f"{scaled:,.{self._decimals()}f}"
        return text if "," in self.printed else text.replace(",", "")

    def rendered(self, value: int) -> str:
        """`value` written the way the figure is printed (same unit, decimals rounded)."""
        value -= self.offset
        if self.unit == 1:
            return f"{value:,}"
        return self._format(value / self.unit)

    def truncated(self, value: int) -> str:
        value -= self.offset
        if self.unit == 1:
            return f"{value:,}"
        step = 10 ** self._decimals()
        return self._format(math.floor(value / self.unit * step) / step)

    def matches(self, value: int) -> bool:
        """Equal to the printed precision: rounded, or cut off as the paper does for
        ResNet-50 (3.858 x 10^9 printed as 3.8)."""
        return self.printed in (self.rendered(value), self.truncated(value))


_TORCHVISION = "torchvision"
_PREACT_PAPER = "pre-activation paper"
_BN = "BN scale/shift"
_CIFAR_CODE = "PyTorch CIFAR code"
# Depth -> parameters of that code's ResNet18..152 (10 classes), torch's count.
CIFAR_CODE_PARAMS = {18: 11_173_962, 34: 21_282_122, 50: 23_520_842, 101: 42_512_970,
                     152: 58_156_618}
_TIMM = "timm"
_SENET = "SENet's Caffe file (timm's count)"
_INSIGHTFACE = "insightface's (torch's count)"

# Canonical name -> its published figures (see the module docstring).
FAMILY_FIGURES: dict[str, tuple[Figure, ...]] = {
    "resnext50-32x4d": (Figure("parameters", "25,028,904", 1, _TORCHVISION),
                        Figure("multiply_adds", "4.23", 1e9, _TORCHVISION),
                        Figure("multiply_adds", "4.2", 1e9, "ResNeXt paper, Table 1")),
    "resnext101-32x8d": (Figure("parameters", "88,791,336", 1, _TORCHVISION),
                         Figure("multiply_adds", "16.414", 1e9, _TORCHVISION)),
    "resnext101-64x4d": (Figure("parameters", "83,455,272", 1, _TORCHVISION),
                         Figure("multiply_adds", "15.46", 1e9, _TORCHVISION)),
    "wide-resnet50-2": (Figure("parameters", "68,883,240", 1, _TORCHVISION),
                        Figure("multiply_adds", "11.398", 1e9, _TORCHVISION)),
    "wide-resnet101-2": (Figure("parameters", "126,886,696", 1, _TORCHVISION),
                         Figure("multiply_adds", "22.753", 1e9, _TORCHVISION)),
    "cifar10-preresnet164": (Figure("parameters", "1.7", 1e6, _PREACT_PAPER, 24_224, _BN),
                             Figure("parameters", "1,703,258", 1, "exact count")),
    "cifar10-preresnet1001": (Figure("parameters", "10.2", 1e6, _PREACT_PAPER, 149_216, _BN),
                              Figure("parameters", "10,327,706", 1, "exact count")),
    **{f"cifar10-resnet{depth}-imagenetstages": (Figure("parameters", f"{count:,}", 1,
                                                        _CIFAR_CODE),)
       for depth, count in CIFAR_CODE_PARAMS.items()},
    # timm's parameter counts (1000 classes); SENet's Caffe layout (the stride on SE-ResNet's
    # first 1x1, MSRA's pool1) has the same weights.
    **{name: (Figure("parameters", count, 1, _TIMM),) for name, count in (
        ("seresnet50", "28,088,024"), ("seresnet101", "49,326,872"),
        ("seresnet152", "66,821,848"), ("seresnext50-32x4d", "27,559,896"),
        ("seresnext101-32x4d", "48,955,416"), ("resnet18d", "11,708,744"),
        ("resnet34d", "21,816,904"), ("resnet26d", "16,014,408"), ("resnet50c", "25,576,264"),
        ("resnet50d", "25,576,264"), ("resnet101d", "44,568,392"),
        ("resnet152d", "60,212,040"), ("resnet200d", "64,693,064"),
        # timm 1.0.31's ECA nets and tiered-stem (*t) nets (sum(p.numel()), timm.create_model)
        ("ecaresnet26t", "16,011,916"), ("ecaresnet50d", "25,576,350"),
        ("ecaresnet101d", "44,568,563"), ("resnet50t", "25,573,728"),
        ("seresnext26t-32x4d", "16,806,976"),
        # timm 1.0.31's Res2Nets and ResNet-RS nets (the same count)
        ("res2net50-26w-4s", "25,699,120"), ("res2net50-48w-2s", "25,287,304"),
        ("res2net50-14w-8s", "25,059,816"), ("res2net50-26w-6s", "37,051,448"),
        ("res2net50-26w-8s", "48,403,776"), ("res2net101-26w-4s", "45,206,688"),
        ("resnetrs50", "35,691,912"), ("resnetrs101", "63,618,696"),
        ("resnetrs152", "86,621,576"), ("resnetrs200", "93,209,992"))},
    **{name: (Figure("parameters", count, 1, _SENET),) for name, count in (
        ("seresnet50-stride1x1", "28,088,024"), ("seresnet101-stride1x1", "49,326,872"),
        ("seresnet152-stride1x1", "66,821,848"))},
    # ArcFace's IResNets: torch's count of insightface's arcface_torch code (the embedding's
    # fixed BatchNorm1d weight included), as the IResNet issue quotes it.
    "iresnet18": (Figure("parameters", "24,025,600", 1, _INSIGHTFACE),),
    "iresnet34": (Figure("parameters", "34,139,328", 1, _INSIGHTFACE),),
    "iresnet50": (Figure("parameters", "43,590,848", 1, _INSIGHTFACE),),
    "iresnet100": (Figure("parameters", "65,156,160", 1, _INSIGHTFACE),),
    "iresnet200": (Figure("parameters", "118,833,920", 1, _INSIGHTFACE),),
}


def option_of(spec: ArchSpec) -> str:
    return PLAIN if spec.plain else str(spec.shortcut)


def is_paper_network(spec: ArchSpec) -> bool:
    """The paper's nets: ResNet-RS's stem convolution (stem_pool "conv") is not theirs."""
    return (not spec.family and spec.stem_pool != STEM_POOL_CONV and spec.is_paper_layout
            and spec.num_classes == DEFAULT_CLASSES[spec.dataset]
            and spec.input_size == DEFAULT_INPUT[spec.dataset])


def figures_for(spec: ArchSpec) -> list[Figure]:
    """Every paper/reference figure that applies to `spec` (empty for custom networks)."""
    if spec.family:
        # The stem's pooling changes no count: the figures of the default stem apply (not
        # to ResNet-RS's convolution, which has weights).
        default = spec
        if spec.stem_pool in STEM_POOLS:
            default = replace(spec, stem_pool=default_stem_pool(spec.dataset, True))
        return list(FAMILY_FIGURES.get(default.name, ()))
    if not is_paper_network(spec):
        return []
    option = option_of(spec)
    conv1_channels = 64 if spec.dataset == "imagenet" else spec.widths[0]  # as the builder
    bias = conv1_channels if spec.conv1_bias else 0
    figures = []
    if spec.dataset == "imagenet" and spec.stride_in == "1x1" and (spec.depth, option) in TABLE1_MACS:
        figures.append(Figure("multiply_adds", TABLE1_MACS[(spec.depth, option)], 1e9, "Table 1"))
    if spec.dataset == "cifar10" and option in ("A", PLAIN) and spec.depth in TABLE6_PARAMS:
        figures.append(Figure("parameters", TABLE6_PARAMS[spec.depth], 1e6, "Table 6", bias))
    exact = EXACT_PARAMS.get((spec.dataset, spec.depth, option))
    if exact is not None:
        figures.append(Figure("parameters", f"{exact:,}", 1, "exact count", bias))
    macs = EXACT_MACS.get((spec.dataset, spec.depth, option, spec.stride_in))
    if macs is not None:
        figures.append(Figure("multiply_adds", macs[0], macs[1], "exact count"))
    return figures
