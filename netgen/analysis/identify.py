"""Which netgen spec a network is: read the spec's fields off an analysis.

Everything a spec decides shows in the canonical analysis: the stem (a 7x7/2 convolution and
a 3x3/2 max pooling whose pad and rounding name MSRA's or torchvision's pool1, or CIFAR-10's
3x3 convolution), the blocks per stage and their kind, the widths (and from the 3x3's width
and groups, ResNeXt's cardinality and width per group), where a bottleneck's stride sits,
the shortcuts (zero-pad, projection where shapes change, projection everywhere, none), the
wiring (pre- or post-activation), the classes and the input size. `infer_spec` reads them
and lets `make_spec` validate the result; the caller builds the spec and compares it with
the network (diff's canonical comparison decides, not this guess). Where a field cannot be
read, the guess keeps netgen's default for it and says what did not fit, so that the
closest name can still be built and its differences named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from netgen.analysis.topology import (Analysis, Block, inner_widths, res2net_base_width,
                                      se_rule)
from netgen.arch.spec import (BASE_WIDTH, BOTTLENECK_EXPANSION, CIFAR_WIDTHS, IMAGENET_LAYOUTS,
                              IMAGENET_WIDTHS, IRESNET_EMBEDDING, PREACT_IMAGENET_LAYOUTS,
                              RESNEXT_CIFAR_WIDTHS, STEM_KERNELS, STEM_POOL_CONV, STEM_POOLS,
                              ArchSpec,
                              TIERED_STEM_WIDTHS, eca_kernel, inner_width, make_spec,
                              spec_from_name)
from netgen.errors import NetgenError


@dataclass
class Guess:
    """The spec read off a network (None when not even a closest one could be made) and
    what of the network did not fit a netgen spec."""

    spec: ArchSpec | None
    misfits: list[str] = field(default_factory=list)
    fields: dict = field(default_factory=dict)  # what was read, before make_spec judged it


def stem_ops(analysis: Analysis) -> list:
    """The ops before the first block; in a plain net (no block cuts the main path) conv1
    and what follows it up to the first pooling (ImageNet) or the next convolution."""
    if analysis.blocks:
        return [e.op for e in analysis.stem]
    ops = [e.op for e in analysis.entries]
    first = next((i for i, op in enumerate(ops) if op.type == "Conv"), None)
    if first is None:
        return ops
    pool = next((i for i, op in enumerate(ops) if op.type == "Pool"), None)
    if ops[first].attrs["kernel"] == [7, 7] and pool is not None:
        return ops[:pool + 1]
    end = next((i for i in range(first + 1, len(ops)) if ops[i].type == "Conv"), len(ops))
    return ops[:end]


def _stem(analysis: Analysis, misfits: list[str]) -> dict:
    """dataset, stem pooling and conv1 bias from the ops before the first block."""
    stem = stem_ops(analysis)
    convs = [op for op in stem if op.type == "Conv"]
    pools = [op for op in stem if op.type == "Pool"]
    out: dict = {}
    if not convs:
        misfits.append("stem: no convolution before the first block")
        return out
    last = convs[-1].attrs
    if len(convs) in (2, 4) and not pools and last["kernel"] == [3, 3] \
            and last["stride"] == [2, 2] and last["in_channels"] == last["out_channels"]:
        out["stem_pool"] = STEM_POOL_CONV  # ResNet-RS: a strided 3x3 for pool1
        convs = convs[:-1]
    conv = convs[0].attrs
    deep = [op.attrs for op in convs[:3]]
    read = [(c["kernel"], c["stride"][0], c["out_channels"]) for c in deep]
    tiered = [([3, 3], 2 if i == 0 else 1, w) for i, w in enumerate(TIERED_STEM_WIDTHS)]
    if len(convs) == 3 and read == tiered:
        out["tiered_stem"] = True  # timm's *t: three 3x3 convolutions of 24, 32, 64
        conv = {"kernel": [7, 7], "stride": [2, 2]}
        convs = convs[:1]
    elif len(convs) == 3 and read == [([3, 3], 2, 32), ([3, 3], 1, 32), ([3, 3], 1, 64)]:
        out["deep_stem"] = True  # ResNet-C: three 3x3 convolutions for the 7x7
        conv = {"kernel": [7, 7], "stride": [2, 2]}
        convs = convs[:1]
    if conv["kernel"] == [7, 7] and conv["stride"] == [2, 2]:
        out["dataset"] = "imagenet"
        # a (non-zero) bias right before BatchNorm: the published ResNet-50's conv1
        out["conv1_bias"] = bool(convs[0].extra.get("bias") and convs[0].extra.get("bn"))
        pool = pools[0].attrs if pools else None
        if out.get("stem_pool") == STEM_POOL_CONV:
            pass
        elif pool is None or pool.get("global") or (pool["pool"], pool["kernel"], pool["stride"]) \
                != ("MAX", [3, 3], [2, 2]):
            misfits.append("stem: no 3x3 max pooling of stride 2 after conv1")
        else:
            for name, (pad, mode) in STEM_POOLS.items():
                if pool["pad"] == [pad, pad] and pool["round_mode"] in (mode, "CEIL"):
                    out["stem_pool"] = name
            if "stem_pool" not in out:
                misfits.append(f"stem: pool1 pads {pool['pad']} rounding {pool['round_mode']}")
    elif conv["kernel"] == [3, 3] and conv["stride"] == [1, 1] and not pools \
            and any(op.type == "PReLU" for op in stem):
        out["dataset"] = "imagenet"  # ArcFace's IResNet: 3x3 conv, BN, PReLU, no pooling
        out["iresnet"] = True
    elif conv["kernel"][0] in STEM_KERNELS and conv["kernel"][0] == conv["kernel"][1] \
            and conv["stride"] == [1, 1] and not pools:
        out["dataset"] = "cifar10"
        out["stem_kernel"] = conv["kernel"][0]
        out["stem_bn"] = _stem_bn(analysis, stem)
    else:
        misfits.append(f"stem: a {conv['kernel'][0]}x{conv['kernel'][1]} convolution of stride "
                       f"{conv['stride'][0]}" + (" and a pooling" if pools else ""))
    if len(convs) > 1:
        misfits.append(f"stem: {len(convs)} convolutions")
    return out


def _stem_bn(analysis: Analysis, stem: list) -> bool:
    """Whether a pre-activation conv1 has a BN-ReLU of its own (the CIFAR code's SENet18).
    The first block's BN-ReLU shows in the stem where its projection reads the pre-activated
    input (the fork comes after it), in the block's branch where its shortcut is the
    identity; a ReLU more than that is the stem's."""
    relus = sum(1 for op in stem if op.type == "ReLU")
    body = analysis.blocks[0].body if analysis.blocks else []
    own_entry = bool(body) and body[0].op.type in ("BN", "ReLU")
    return relus >= 2 or (relus == 1 and own_entry)


def _changes(block: Block) -> bool:
    """Whether the block's shape changes (stride or width): where option B projects."""
    convs = block.convs
    return block.stride > 1 or (bool(convs) and convs[0].attrs["in_channels"]
                                != convs[-1].attrs["out_channels"])


def _shortcut(blocks: list[Block], misfits: list[str]) -> str | None:
    # ResNet-D's pooled projection is a projection (avg_down says how it downsamples)
    kinds = [(b.join_entry.shortcut.kind.replace("pooled-projection", "projection"),
              _changes(b)) for b in blocks]
    if all(kind == "projection" for kind, _ in kinds):
        return "C"
    if all((kind == "projection") == changes and kind in ("projection", "identity")
           for kind, changes in kinds):
        return "B"
    if all(kind == ("zero-pad" if changes else "identity") or (kind == "identity" and changes)
           for kind, changes in kinds) and any(kind == "zero-pad" for kind, _ in kinds):
        return "A"
    found = Counter(kind for kind, _ in kinds)
    misfits.append("shortcuts: " + ", ".join(f"{n} {k}" for k, n in sorted(found.items())))
    return None


def _blocks(analysis: Analysis, out: dict, misfits: list[str]) -> None:
    """Layout, block kind, widths, groups, stride placement, shortcut and wiring."""
    blocks = analysis.blocks
    kinds = {b.kind for b in blocks}
    if len(kinds) != 1 or not kinds <= {"basic", "bottleneck", "res2net"}:
        misfits.append("blocks: " + ", ".join(sorted(kinds)))
        return
    kind = kinds.pop()
    if kind == "res2net":
        _res2net(analysis, out, misfits)
        kind = "bottleneck"  # a Res2Net block is netgen's bottleneck with res2net_scale
    out["block"] = kind
    out["stages"] = tuple(len(stage_blocks) for _, stage_blocks in analysis.layout)
    wirings = {b.wiring for b in blocks}
    if len(wirings) > 1:
        misfits.append("wiring: " + ", ".join(sorted(wirings)) + " blocks")
    out["preact"] = wirings == {"pre-activation"}
    if wirings == {"improved"}:
        out["iresnet"] = True  # ArcFace's block, whatever the stem
        out["dataset"] = "imagenet"
    elif out.get("iresnet"):
        misfits.append("wiring: an IResNet stem before " + ", ".join(sorted(wirings))
                       + " blocks")
        out.pop("iresnet")
    expansion = BOTTLENECK_EXPANSION if kind == "bottleneck" else 1
    widths, groups, per_group = [], set(), set()
    for _, stage_blocks in analysis.layout:
        inner, width, group = inner_widths(stage_blocks[0])
        planes = width // expansion
        widths.append(planes)
        groups.add(group)
        if kind == "bottleneck" and planes and stage_blocks[0].res2net is None:
            wpg = inner * BASE_WIDTH // (planes * group)
            per_group.add(wpg if inner_width(planes, group, wpg) == inner else None)
    expected = IMAGENET_WIDTHS if out.get("dataset") == "imagenet" else CIFAR_WIDTHS
    if out.get("dataset") == "cifar10" and len(widths) == len(IMAGENET_WIDTHS):
        out["imagenet_stages"] = True  # the literature's CIFAR ResNet-18: Table 1's stages
        expected = IMAGENET_WIDTHS
    elif out.get("dataset") == "cifar10" and groups - {1}:
        expected = RESNEXT_CIFAR_WIDTHS  # the ResNeXt paper's CIFAR nets
    if tuple(widths) != expected:
        misfits.append(f"widths: {', '.join(map(str, widths))} (netgen's "
                       f"{out.get('dataset', 'imagenet')} nets: {', '.join(map(str, expected))})")
    if len(groups) == 1 and len(per_group) <= 1 and None not in per_group:
        out["groups"] = groups.pop()
        if per_group:
            out["width_per_group"] = per_group.pop()
    else:
        misfits.append("groups and widths per group differ between stages")
    if kind == "bottleneck":
        firsts = [stage_blocks[0] for _, stage_blocks in analysis.layout[1:]]
        places = {next((i for i, op in enumerate(b.convs) if op.attrs["stride"] != [1, 1]), None)
                  for b in firsts}
        if places <= {0}:
            out["stride_in"] = "1x1"
        elif places <= {1}:
            out["stride_in"] = "3x3"
    shortcut = _shortcut(blocks, misfits)
    if shortcut:
        out["shortcut"] = shortcut
    if any(b.join_entry.shortcut.kind == "pooled-projection" for b in blocks):
        out["avg_down"] = True
    _se(analysis, out, misfits)
    _eca(analysis, out, misfits)


def _res2net(analysis: Analysis, out: dict, misfits: list[str]) -> None:
    """timm's Res2Net: one scale and one base width in every block (split widths
    floor(planes * w / 64)), the hierarchical sums wherever the block does not project."""
    found = {(b.res2net["scale"], res2net_base_width(b)) for b in analysis.blocks}
    if len(found) != 1:
        misfits.append("Res2Net blocks of " + ", ".join(f"{w}w x {s}" for s, w in sorted(found)))
        return
    scale, width = found.pop()
    planes = [b.convs[-1].attrs["out_channels"] // BOTTLENECK_EXPANSION for b in analysis.blocks]
    if any(p * width // BASE_WIDTH != b.res2net["width"] for p, b in zip(planes, analysis.blocks)):
        misfits.append(f"Res2Net split widths that are not floor(planes x {width} / 64)")
        return
    out["res2net_scale"], out["res2net_width"] = scale, width


def _eca(analysis: Analysis, out: dict, misfits: list[str]) -> None:
    """timm's ECA units: on every block, each kernel timm's for its channels."""
    with_eca = [b.eca is not None for b in analysis.blocks]
    if not any(with_eca):
        return
    if not all(with_eca):
        misfits.append(f"ECA on {sum(with_eca)} of {len(with_eca)} blocks")
        return
    odd = [b.eca.attrs for b in analysis.blocks
           if b.eca.attrs["k"] != eca_kernel(b.eca.attrs["channels"])]
    if odd:
        misfits.append("ECA kernels " + ", ".join(f"{a['k']} on {a['channels']} channels"
                                                  for a in odd[:3]) + " (timm's rule gives "
                       + ", ".join(str(eca_kernel(a["channels"])) for a in odd[:3]) + ")")
        return
    out["eca"] = True

def _se(analysis: Analysis, out: dict, misfits: list[str]) -> None:
    """The SE units' reduction and width rule, read off each stage's first block."""
    with_se = [b.se is not None for b in analysis.blocks]
    if not any(with_se):
        return
    if not all(with_se):
        misfits.append(f"squeeze-and-excitation on {sum(with_se)} of {len(with_se)} blocks")
        return
    widths = [(blocks[0].se.attrs["channels"], blocks[0].se.attrs["reduced"])
              for _, blocks in analysis.layout]
    found = se_rule(widths)
    if found is None:
        misfits.append("squeeze-and-excitation widths " + ", ".join(f"{c} -> {r}"
                                                                    for c, r in widths))
        return
    out["se"], out["se_width"] = found


def _plain(analysis: Analysis, out: dict, misfits: list[str]) -> None:
    """A net without shortcuts: its stages are the runs of convolutions of one width."""
    convs = [e.op for e in analysis.entries[len(stem_ops(analysis)):] if e.op.type == "Conv"]
    kernels = [op.attrs["kernel"][0] for op in convs]
    if kernels and all(k == 3 for k in kernels) and len(kernels) % 2 == 0:
        kind, per_block = "basic", 2
    elif kernels and kernels == [1, 3, 1] * (len(kernels) // 3):
        kind, per_block = "bottleneck", 3
    else:
        misfits.append("plain: convolutions that are neither 3x3 pairs nor 1x1-3x3-1x1 triples")
        return
    if out.get("dataset") == "cifar10" and convs and convs[-1].attrs["out_channels"] \
            == IMAGENET_WIDTHS[-1] * (BOTTLENECK_EXPANSION if kind == "bottleneck" else 1):
        out["imagenet_stages"] = True
    runs: list[int] = []
    last = None
    for i in range(0, len(convs), per_block):
        width = convs[i + per_block - 1].attrs["out_channels"]
        if width != last:
            runs.append(0)
            last = width
        runs[-1] += 1
    out.update(block=kind, stages=tuple(runs), plain=True)


def infer_spec(analysis: Analysis) -> Guess:
    """The netgen spec `analysis` reads as (canonical analyses: representation ignored)."""
    misfits: list[str] = []
    graph = analysis.side.graph
    shape = graph.inputs[0].shape if graph.inputs else ()
    out: dict = {}
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        misfits.append(f"input: {list(shape)} (netgen's nets take N x 3 x S x S images)")
    else:
        out["input_size"] = shape[2]
    out.update(_stem(analysis, misfits))
    if analysis.blocks:
        _blocks(analysis, out, misfits)
    else:
        _plain(analysis, out, misfits)
    if out.get("preact"):
        # BN-ReLU between the last sum and the pooling (the CIFAR code's PreActResNet: none)
        after = analysis.entries[analysis.blocks[-1].join + 1:] if analysis.blocks else []
        out["final_bn"] = any(e.op.type == "ReLU" for e in after)
    if not out.get("preact") or out.get("dataset") != "cifar10":
        out.pop("stem_bn", None)  # only a CIFAR-10 pre-activation stem may have its own
    fcs = [e.op for e in analysis.entries if e.op.type == "FC"]
    if out.get("iresnet"):
        _embedding(analysis, fcs, misfits)
    elif fcs:
        out["num_classes"] = fcs[-1].attrs["out_features"]
    else:
        misfits.append("head: no fully connected layer")
    return Guess(_make(out, misfits), misfits, out)


def _embedding(analysis: Analysis, fcs: list, misfits: list[str]) -> None:
    """An IResNet's head: BN over the last map, fc 512 with BN (the fc's shift in the
    canonical form), no pooling; its fc is the embedding, not a classifier, so the classes
    (the train_val's identities) keep their default."""
    head = [e.op.type for e in analysis.head]
    if head != ["BN", "FC"] or fcs[-1].attrs["out_features"] != IRESNET_EMBEDDING:
        misfits.append("head: " + (" ".join(head) or "nothing") + " (an IResNet's: BN, fc "
                       f"{IRESNET_EMBEDDING}, BN)")


def _make(fields: dict, misfits: list[str]) -> ArchSpec | None:
    """make_spec of what was read; a field make_spec refuses is dropped (its default stands
    in) and named."""
    fields = dict(fields)
    if fields.get("dataset") != "imagenet":
        fields.pop("conv1_bias", None)
        fields.pop("stem_pool", None)
    for _ in range(len(fields) + 1):
        try:
            return make_spec(**fields)
        except NetgenError as exc:
            # drop the least structural field first; what remains is the closest spec
            for key in ("stride_in", "width_per_group", "groups", "res2net_width",
                        "res2net_scale", "shortcut", "imagenet_stages",
                        "stages", "block", "se_width", "se", "eca", "avg_down",
                        "tiered_stem", "deep_stem",
                        "stem_kernel", "stem_bn", "final_bn", "input_size", "num_classes",
                        "preact", "plain", "iresnet"):
                if key in fields:
                    misfits.append(f"{key}: {exc}")
                    del fields[key]
                    break
            else:
                return None
    return None


# --------------------------------------------------------------------------- the closest name
# The most candidates one search builds: each is built and compared with the file.
MAX_CANDIDATES = 24
# Listed networks (netgen list) compared besides the spec space: the nearest by signature.
NEAREST_LISTED = 4


def canonical_parameters(analysis: Analysis) -> int:
    """Learned values of the architecture, whatever the file folded: convolution and fc
    weights, SE, ECA and SK units, and BatchNorms that stand alone (pre-activation); a convolution's
    per-channel shift and an fc bias are representation (BatchNorm folded or not) and left
    out, so two files of one network count the same."""
    total = 0
    for op in analysis.ops:
        a = op.attrs
        if op.type == "Conv":
            kh, kw = a["kernel"]
            total += a["out_channels"] * a["in_channels"] // max(1, a["group"]) * kh * kw
        elif op.type == "FC":
            total += a["in_features"] * a["out_features"]
        elif op.type == "SE":
            total += 2 * a["channels"] * a["reduced"] + a["channels"] + a["reduced"]
        elif op.type == "ECA":
            total += a["k"]
        elif op.type == "SK":  # its paths' convolutions and the attention's two 1x1s
            share = a["in_channels"] // (len(a["paths"]) if a["split"] else 1)
            total += sum(a["out_channels"] * share // max(1, group) * kh * kw
                         for kh, kw, _, group in a["paths"])
            total += (1 + len(a["paths"])) * a["out_channels"] * (a["reduced"] or 0)
        elif op.type == "BN":
            total += 2 * a["channels"]
    return total


def _near_depths(layouts: dict[int, tuple[str, tuple[int, ...]]], block: str | None,
                 blocks: int) -> list[int]:
    """The table depths of `block` (any where unknown) nearest to `blocks` blocks in all."""
    fit = [(abs(sum(stages) - blocks), depth) for depth, (kind, stages) in layouts.items()
           if block is None or kind == block]
    return [depth for _, depth in sorted(fit)[:2]]


def _layouts(fields: dict) -> list[dict]:
    """Layouts a spec may take for the blocks the file has: as read where they are one of
    netgen's, else the nearest a dataset allows (the dataset read off the stem, or guessed
    from the input size: up to 64 pixels CIFAR-10 first)."""
    stages = tuple(fields.get("stages") or ())
    blocks = sum(stages)
    block = fields.get("block")
    if "dataset" in fields:
        datasets = [fields["dataset"]]
    else:
        small = fields.get("input_size", 224) <= 64
        datasets = ["cifar10", "imagenet"] if small else ["imagenet", "cifar10"]
    table = PREACT_IMAGENET_LAYOUTS if fields.get("preact") else IMAGENET_LAYOUTS
    out: list[dict] = []
    for dataset in datasets:
        if dataset == "imagenet" or (len(stages) == 4 and dataset == "cifar10"):
            extra = {} if dataset == "imagenet" else {"imagenet_stages": True}
            if len(stages) == 4:
                out.append({"dataset": dataset, "stages": stages, **extra})
            for depth in _near_depths(table, block, blocks):
                out.append({"dataset": dataset, "depth": depth, "block": table[depth][0],
                            **extra})
        if dataset == "cifar10":
            if len(stages) == 3 and len(set(stages)) == 1:
                out.append({"dataset": dataset, "stages": stages})
            elif stages:
                n = max(1, round(blocks / 3))
                out.append({"dataset": dataset, "stages": (n, n, n)})
    return out or [{}]


def spec_space(guess: Guess) -> list[ArchSpec]:
    """The specs the file suggests, nearest first: the one read off it, then the variants of
    what it did not settle: the layout (the dataset from the stem or the input size, the
    blocks per stage), the block kind, pre-activation, the shortcut option and where a
    bottleneck's stride sits, each only where the file leaves it open. make_spec judges
    each; a field it refuses falls back to its default (as for the read spec)."""
    fields = {k: v for k, v in guess.fields.items() if k != "plain" or v}
    open_fields: dict[str, list] = {}
    if fields.get("block") is None and not fields.get("plain"):
        open_fields["block"] = ["basic", "bottleneck"]
    if "preact" not in fields and not fields.get("plain"):
        open_fields["preact"] = [False, True]
    if "shortcut" not in fields and not fields.get("plain"):
        open_fields["shortcut"] = ["B", "A", "C"]
    if fields.get("block", "bottleneck") == "bottleneck" and "stride_in" not in fields:
        open_fields["stride_in"] = [None, "1x1", "3x3"]
    variants = [{}]
    for key, values in open_fields.items():
        variants = [dict(v, **{key: value}) for v in variants for value in values]
    specs: list[ArchSpec] = [guess.spec] if guess.spec is not None else []
    names = {s.name for s in specs}
    base = {k: v for k, v in fields.items() if k not in ("stages", "dataset", "depth",
                                                         "imagenet_stages")}
    for layout in _layouts(fields):
        for variant in variants:
            trial = {**base, **layout, **variant}  # a variant's value wins over the layout's
            if trial.get("block") is None:
                trial.pop("block", None)
            if trial.get("dataset") != "imagenet":
                trial.pop("conv1_bias", None)
                trial.pop("stem_pool", None)
            if "depth" in trial:
                trial.pop("stages", None)
            spec = _make(trial, [])
            if spec is not None and spec.name not in names:
                names.add(spec.name)
                specs.append(spec)
            if len(specs) >= MAX_CANDIDATES:
                return specs
    return specs


def outline(analysis: Analysis) -> dict:
    """What a person names a residual network by before its depth: whether its stem
    downsamples (ImageNet's 7x7/2 and pooling, ResNet-C's) or keeps the input's size
    (CIFAR's 3x3, and a 112-pixel face net's), the blocks' kind and wiring, SE, grouped 3x3s.
    Read the same way off the file and off each candidate's build, so that any network
    netgen can name, of whatever field, is judged alike."""
    stem = stem_ops(analysis)
    strides = [op.attrs["stride"][0] for op in stem if op.type in ("Conv", "Pool")
               and not op.attrs.get("global")]
    blocks = analysis.blocks
    return {"stem": "downsamples" if any(s > 1 for s in strides) else "keeps the size",
            "block": sorted({b.kind for b in blocks}),
            "wiring": sorted({b.wiring for b in blocks}),
            "se": any(b.se is not None for b in blocks),
            "eca": any(b.eca is not None for b in blocks),
            "grouped": any(op.attrs.get("group", 1) > 1 for b in blocks for op in b.convs)}


def outline_distance(a: Analysis, b: Analysis) -> int:
    """How many of the outline's features differ between two networks."""
    x, y = outline(a), outline(b)
    return sum(x[key] != y[key] for key in x)


def _signature(analysis: Analysis) -> tuple:
    """Blocks, stages, the one block kind (or None), all pre-activation, any SE."""
    blocks = analysis.blocks
    kinds = {b.kind for b in blocks}
    return (len(blocks), len(analysis.layout), kinds.pop() if len(kinds) == 1 else None,
            bool(blocks) and all(b.wiring == "pre-activation" for b in blocks),
            any(b.se is not None for b in blocks))


def spec_kind(spec: ArchSpec) -> str:
    """The block kind an analysis reads off `spec`'s build (Block.kind): a Res2Net's
    bottlenecks are res2net."""
    return "res2net" if spec.res2net_scale else spec.block


def nearest_listed(analysis: Analysis, specs: list[ArchSpec],
                   count: int = NEAREST_LISTED) -> list[ArchSpec]:
    """The `count` listed networks whose outline (blocks, stages, block kind, wiring, SE)
    is nearest the file's, with the file's classes and input size where they take them:
    a network that no field of the spec space reaches (another block or stem) still
    competes by what differs."""
    blocks, stages, kind, preact, se = _signature(analysis)
    graph = analysis.side.graph
    shape = graph.inputs[0].shape if graph.inputs else ()
    fcs = [e.op for e in analysis.entries if e.op.type == "FC"]

    def distance(spec: ArchSpec) -> tuple:
        return (abs(sum(spec.stages) - blocks) + 4 * abs(len(spec.stages) - stages)
                + 2 * (kind is not None and spec_kind(spec) != kind) + (spec.preact != preact)
                + (bool(spec.se_reduction) != se),)

    out = []
    for spec in sorted(specs, key=distance)[:count]:
        fields = {}
        if len(shape) == 4 and shape[2] == shape[3]:
            fields["input_size"] = shape[2]
        if fcs:
            fields["num_classes"] = fcs[-1].attrs["out_features"]
        try:  # the name of the adapted spec, read back, validates it
            out.append(spec_from_name(replace(spec, **fields).name))
        except NetgenError:
            out.append(spec)
    return out
