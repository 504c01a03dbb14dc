"""The architecture spec: everything that decides a network, validated once, up front.

Table 1 (ImageNet) and Section 4.2 (CIFAR-10) of the paper live here as data; the builder
reads them and never branches on a depth.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

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
CIFAR_PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
BOTTLENECK_EXPANSION = 4

DATASETS = ("imagenet", "cifar10")
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C")
STRIDE_PLACEMENTS = ("1x1", "3x3")
DEFAULT_SHORTCUT = {"imagenet": "B", "cifar10": "A"}
DEFAULT_CLASSES = {"imagenet": 1000, "cifar10": 10}
DEFAULT_INPUT = {"imagenet": 224, "cifar10": 32}

# Hard ceilings so that absurd requests fail with a message instead of exhausting memory.
MAX_LAYERS = 200_000
MAX_INPUT_SIZE = 4096
MAX_WIDTH = 65_536
MAX_CLASSES = 1_000_000


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

    @property
    def plain(self) -> bool:
        return self.shortcut is None

    @property
    def name(self) -> str:
        """Folder name under generated/: resnet101-B, plain34, cifar10-resnet110-A."""
        prefix = "cifar10-" if self.dataset == "cifar10" else ""
        kind = "plain" if self.plain else "resnet"
        base = f"{prefix}{kind}{self.depth}"
        if not self.is_paper_layout:
            base += "-" + "-".join(str(n) for n in self.stages) + f"-{self.block}"
        if not self.plain:
            base += f"-{self.shortcut}"
        if self.stride_in != "1x1":
            base += f"-stride{self.stride_in}"
        if self.dataset == "imagenet" and self.conv1_bias != default_conv1_bias(self.block,
                                                                                self.stages):
            base += "-conv1bias" if self.conv1_bias else "-noconv1bias"
        if self.num_classes != DEFAULT_CLASSES[self.dataset]:
            base += f"-classes{self.num_classes}"
        if self.input_size != DEFAULT_INPUT[self.dataset]:
            base += f"-input{self.input_size}"
        return base

    @property
    def is_paper_layout(self) -> bool:
        if self.dataset == "cifar10":
            return True
        return IMAGENET_LAYOUTS.get(self.depth) == (self.block, self.stages)

    @property
    def out_channels(self) -> tuple[int, ...]:
        factor = BOTTLENECK_EXPANSION if self.block == "bottleneck" else 1
        return tuple(w * factor for w in self.widths)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stages"] = list(self.stages)
        data["widths"] = list(self.widths)
        data["plain"] = self.plain
        data["name"] = self.name
        return data


def _positive(value: int | None, what: str) -> None:
    if value is not None and value <= 0:
        raise NetgenError(f"{what} must be a positive integer, got {value}")


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
    stride_in: str = "1x1",
    conv1_bias: bool | None = None,
) -> ArchSpec:
    """Validate user choices and fill the paper's defaults; every error names what is allowed."""
    if dataset not in DATASETS:
        raise NetgenError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    if block is not None and block not in BLOCKS:
        raise NetgenError(f"unknown block {block!r}; allowed: {', '.join(BLOCKS)}")
    if shortcut is not None and shortcut.upper() not in SHORTCUTS:
        raise NetgenError(f"unknown shortcut option {shortcut!r}; allowed: A, B, C")
    if stride_in not in STRIDE_PLACEMENTS:
        raise NetgenError(f"unknown stride placement {stride_in!r}; allowed: 1x1, 3x3")
    if plain and shortcut is not None:
        raise NetgenError("--plain nets have no shortcuts: drop --shortcut, or drop --plain")
    for value, what in ((depth, "depth"), (num_classes, "number of classes"),
                        (input_size, "input size")):
        _positive(value, what)
    if stages is not None:
        if not stages:
            raise NetgenError("--stages needs at least one stage, e.g. 3,4,6,3")
        for count in stages:
            _positive(count, "every stage's block count")
    shortcut = None if plain else (shortcut or DEFAULT_SHORTCUT[dataset]).upper()
    num_classes = num_classes or DEFAULT_CLASSES[dataset]
    input_size = input_size or DEFAULT_INPUT[dataset]
    if num_classes > MAX_CLASSES:
        raise NetgenError(f"number of classes {num_classes} is over the limit of {MAX_CLASSES}")
    if input_size > MAX_INPUT_SIZE:
        raise NetgenError(f"input size {input_size} is over the limit of {MAX_INPUT_SIZE}")

    if dataset == "cifar10":
        spec = _cifar_spec(depth, stages, block, shortcut, num_classes, input_size)
    else:
        spec = _imagenet_spec(depth, stages, block, shortcut, num_classes, input_size,
                              stride_in, conv1_bias)
    if stride_in == "3x3" and spec.block != "bottleneck":
        raise NetgenError("--stride-in 3x3 applies to bottleneck blocks only (depth 50, 101, 152)")
    _check_size(spec)
    return spec


def _cifar_spec(depth, stages, block, shortcut, num_classes, input_size) -> ArchSpec:
    if block not in (None, "basic"):
        raise NetgenError("CIFAR-10 nets use basic blocks only (Section 4.2); drop --block")
    if stages is not None:
        if len(stages) != 3 or len(set(stages)) != 1:
            raise NetgenError("CIFAR-10 nets have 3 stages of n blocks each; use --depth 6n+2")
        n = stages[0]
        if depth is not None and depth != 6 * n + 2:
            raise NetgenError(f"--depth {depth} contradicts --stages (6n+2 = {6 * n + 2})")
    else:
        depth = 20 if depth is None else depth
        if depth < 8 or (depth - 2) % 6:
            raise NetgenError(
                f"CIFAR-10 depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...),"
                f" got {depth}")
        n = (depth - 2) // 6
    return ArchSpec("cifar10", 6 * n + 2, "basic", (n, n, n), CIFAR_WIDTHS, shortcut,
                    num_classes, input_size)


def _imagenet_spec(depth, stages, block, shortcut, num_classes, input_size, stride_in,
                   conv1_bias) -> ArchSpec:
    if stages is None:
        depth = 50 if depth is None else depth
        if depth not in IMAGENET_LAYOUTS:
            allowed = ", ".join(str(d) for d in IMAGENET_LAYOUTS)
            raise NetgenError(f"ImageNet depth {depth} is not in Table 1 (allowed: {allowed});"
                              " give --stages and --block for another layout")
        table_block, stages = IMAGENET_LAYOUTS[depth]
        if block is not None and block != table_block:
            raise NetgenError(f"ResNet-{depth} uses {table_block} blocks in Table 1; "
                              "give --stages for another layout")
        block = table_block
    else:
        if len(stages) != len(IMAGENET_WIDTHS):
            raise NetgenError(f"ImageNet nets have 4 stages (conv2_x..conv5_x), got {len(stages)}")
        block = block or "bottleneck"
        derived = depth_of(block, stages)
        if depth is not None and depth != derived:
            raise NetgenError(f"--depth {depth} contradicts --stages and --block "
                              f"(they give depth {derived}); drop --depth")
        depth = derived
    if conv1_bias is None:
        conv1_bias = default_conv1_bias(block, tuple(stages))
    return ArchSpec("imagenet", depth, block, tuple(stages), IMAGENET_WIDTHS, shortcut,
                    num_classes, input_size, stride_in, conv1_bias)


def default_conv1_bias(block: str, stages: tuple[int, ...]) -> bool:
    """Whether conv1 has a bias unless the user says otherwise: for the ResNet-50 layout.

    The published MSRA ResNet-50 caffemodel has a biased conv1 (2 blobs there); 101 and 152
    do not. Every variant of the 50 layout (A, B, C, plain, stride on the 3x3) keeps the
    bias so that they differ from the published model only in what their name says;
    --no-conv1-bias gives the bias-free counts of DESIGN.md (e.g. 25,557,032 for B).
    """
    return (block, stages) == IMAGENET_LAYOUTS[50]


def _check_size(spec: ArchSpec) -> None:
    layers = (8 if spec.block == "bottleneck" else 6) * sum(spec.stages) * 2 + 16
    if layers > MAX_LAYERS:
        raise NetgenError(f"that network would have about {layers} layers; the limit is "
                          f"{MAX_LAYERS} (use fewer blocks per stage)")
    size = spec.input_size
    # conv1 and pool1 halve twice on ImageNet; then each stage after the first halves once.
    size = size if spec.dataset == "cifar10" else (size + 1) // 2 // 2
    halvings = len(spec.stages) - 1
    if size < 2 ** halvings:
        raise NetgenError(f"input size {spec.input_size} is too small for {len(spec.stages)} "
                          f"stages (the last stage would be smaller than 1x1)")


NAME_EXAMPLES = ("resnet50-B", "resnet18-A", "plain34", "cifar10-resnet20-A", "cifar10-plain20",
                 "resnet50-B-stride3x3", "resnet50-B-noconv1bias", "resnet26-2-2-2-2-bottleneck-B",
                 "resnet18-A-classes100-input112")
_NAME = re.compile(
    r"^(?P<cifar>cifar10-)?(?P<kind>resnet|plain)(?P<depth>\d+)"
    r"(?:-(?P<stages>\d+(?:-\d+)*)-(?P<block>basic|bottleneck))?"
    r"(?:-(?P<shortcut>[ABC]))?(?:-stride(?P<stride>1x1|3x3))?(?:-(?P<bias>conv1bias|noconv1bias))?"
    r"(?:-classes(?P<classes>\d+))?(?:-input(?P<input>\d+))?$")


def is_network_name(name: str) -> bool:
    """Whether `name` has the form of ArchSpec.name (it may still name an invalid net)."""
    return _NAME.match(name) is not None


def spec_from_name(name: str) -> ArchSpec:
    """The inverse of ArchSpec.name: resnet50-B, plain34, cifar10-resnet20-A, ..."""
    match = _NAME.match(name)
    if not match:
        raise NetgenError(f"{name!r} is not a network name; names look like "
                          + ", ".join(NAME_EXAMPLES))
    g = match.groupdict()
    plain = g["kind"] == "plain"
    if plain and g["shortcut"]:
        raise NetgenError(f"{name!r}: plain nets have no shortcut option; write "
                          f"{name[:match.start('shortcut') - 1]}")
    stages = tuple(int(n) for n in g["stages"].split("-")) if g["stages"] else None
    bias = None if g["bias"] is None else g["bias"] == "conv1bias"
    try:
        spec = make_spec(dataset="cifar10" if g["cifar"] else "imagenet", depth=int(g["depth"]),
                         shortcut=g["shortcut"], plain=plain, stages=stages, block=g["block"],
                         stride_in=g["stride"] or "1x1", conv1_bias=bias,
                         num_classes=int(g["classes"]) if g["classes"] else None,
                         input_size=int(g["input"]) if g["input"] else None)
    except NetgenError as exc:
        raise NetgenError(f"{name!r}: {exc}") from None
    if (g["shortcut"] or plain) and spec.name != name:
        raise NetgenError(f"{name!r} is not a canonical network name; did you mean {spec.name!r}?")
    return spec
