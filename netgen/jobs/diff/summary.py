"""Differences grouped by what they mean, in the terms of the paper.

The op-level differences of compare.py are exact but long: ResNet-18 against ResNet-50 is
hundreds of ops. Here the two sides are compared block by block instead: when both have the
same blocks per stage, each pair of blocks yields *facts* (the stride sits on another conv,
the 3x3 is grouped, the shortcut is a projection), and a fact shared by many blocks is one
finding that names where it holds ("the first block of stages 3 to 5"); when the blocks
differ, the finding is the stage layout itself (basic vs bottleneck, blocks per stage).
Stem and head are compared op by op, they are short; a pooling whose windows alone differ
(MSRA's vs torchvision's pool1) is a finding of its own.
"""

from __future__ import annotations

from collections import Counter
from itertools import zip_longest
from typing import TYPE_CHECKING

from netgen.arch.spec import STEM_POOLS
from netgen.analysis.compare import attr_diff, same_shortcut
from netgen.analysis.ops import op_word, sk_text
from netgen.analysis.topology import (Analysis, Block, Entry, Shortcut, inner_widths, kind_text,
                                      layout_text, se_text, stage_text)

if TYPE_CHECKING:
    from netgen.jobs.diff.result import DiffResult

MAX_LINES = 6  # details shown per finding; the rest are in --json
STEM_NAMES = {"msra": "MSRA's", "torchvision": "torchvision's stem"}
MAX_NAMES = 4


# --------------------------------------------------------------------------- one side


def _signature(analysis: Analysis) -> list[list[str]]:
    return [[b.kind for b in blocks] for _, blocks in analysis.layout]


# --------------------------------------------------------------------------- phrasing


def _stages_phrase(stages: list[int]) -> str:
    stages = sorted(set(stages))
    if len(stages) == 1:
        return f"stage {stages[0]}"
    if len(stages) >= 3 and stages == list(range(stages[0], stages[-1] + 1)):
        return f"stages {stages[0]} to {stages[-1]}"
    return "stages " + ", ".join(map(str, stages[:-1])) + f" and {stages[-1]}"


def _names(blocks: list[Block]) -> str:
    names = [b.name for b in blocks[:MAX_NAMES]]
    more = len(blocks) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def where(pairs: list[tuple[Block, Block]], a: Analysis) -> str:
    """'all 16 blocks', 'the first block of stages 3 to 5 (res3a, ...)', 'every block of
    stage 2', or the blocks' names."""
    blocks_a = [x for x, _ in pairs]
    blocks_b = [y for _, y in pairs]
    per_stage = Counter(b.stage for b in blocks_a)
    size = {stage: len(blocks) for stage, blocks in a.layout}
    if len(blocks_a) == len(a.blocks):
        text = f"all {len(blocks_a)} blocks"
    elif all(b.position == 0 for b in blocks_a):
        text = "the first block of " + _stages_phrase(list(per_stage))
    elif all(per_stage[s] == size[s] for s in per_stage):
        text = "every block of " + _stages_phrase(list(per_stage))
    else:
        return ("blocks " if len(blocks_a) > 1 else "block ") + _both_names(blocks_a, blocks_b)
    if len(blocks_a) <= MAX_NAMES:
        text += f" ({_both_names(blocks_a, blocks_b)})"
    return text


def _both_names(blocks_a: list[Block], blocks_b: list[Block]) -> str:
    na, nb = _names(blocks_a), _names(blocks_b)
    return na if na == nb else f"A {na}; B {nb}"


def _role(block: Block, index: int) -> str:
    """The conv at `index` of a block's convs, as one would name it."""
    convs = block.convs
    k = "x".join(map(str, convs[index].attrs["kernel"]))
    same = [i for i, op in enumerate(convs) if op.attrs["kernel"] == convs[index].attrs["kernel"]]
    if len(same) == 1:
        return f"{k} convolution"
    rank = same.index(index)
    if rank == 0:
        return f"first {k} convolution"
    if len(same) == 2:
        return f"second {k} convolution"
    if rank == len(same) - 1:
        return f"last {k} convolution"
    return f"{k} convolution number {rank + 1}"


def _op_text(op) -> str:
    a = op.attrs
    if op.type == "Conv":
        text = f"{'x'.join(map(str, a['kernel']))} conv {a['out_channels']}"
        if a["stride"] != [1, 1]:
            text += f" /{a['stride'][0]}"
        return text + (f" g{a['group']}" if a["group"] != 1 else "")
    if op.type == "Pool":
        if a.get("global"):
            return f"global {a['pool'].lower()} pool"
        return f"{'x'.join(map(str, a['kernel']))} {a['pool'].lower()} pool /{a['stride'][0]}"
    if op.type == "BlurPool":
        return f"blur pool /{a['stride'][0]}"
    if op.type == "FC":  # with a BatchNorm of its features (an IResNet's embedding)
        return f"fc {a['out_features']}" + (", BN" if op.extra.get("bn") else "")
    if op.type == "Subsample":
        parts = ([f"subsample /{a['stride'][0]}"] if a["stride"] != [1, 1] else []) + (
            [f"zero pad {a['pad'][0]}"] if "pad" in a else [])
        return ", ".join(parts) or "subsample /1"
    return op.type


# --------------------------------------------------------------------------- findings


def group_findings(result: "DiffResult") -> list[dict]:
    """The differences of `result`, grouped; empty when the two are equivalent."""
    a, b = result.a, result.b
    findings: list[dict] = []
    if result.input_difference is not None:
        d = result.input_difference
        findings.append(_finding("input", f"input: A {d['a']} | B {d['b']}"))
    if a.blocks and b.blocks:
        if _signature(a) == _signature(b):
            findings += _block_findings(a, b)
        else:
            findings.append(_layout_finding(a, b))
        findings += _ends("stem", a.stem, b.stem) + _ends("head", a.head, b.head)
    elif a.blocks or b.blocks:
        residual, plain = ("A", a) if a.blocks else ("B", b)
        kinds = Counter(block.join_entry.shortcut.kind for block in plain.blocks)
        text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        other = "B" if residual == "A" else "A"
        findings.append(_finding(
            "shortcuts", f"shortcuts: {residual} has {len(plain.blocks)} residual blocks "
            f"({text} shortcuts), {other} is plain (none)"))
        findings += _op_findings(result, shortcuts=False)
    else:
        findings += _op_findings(result, shortcuts=True)
    if not findings and not result.structurally_equal:
        findings += _op_findings(result, shortcuts=True)
        if not findings:
            findings.append(_finding("ops", "op counts: A " + _counts(a) + " | B " + _counts(b)))
    return findings


def _counts(analysis: Analysis) -> str:
    return ", ".join(f"{t} {n}" for t, n in analysis.op_counts.items())


def _finding(kind: str, text: str, lines: list[str] | None = None) -> dict:
    return {"kind": kind, "text": text, "lines": lines or []}


def _layout_finding(a: Analysis, b: Analysis) -> dict:
    lines = []
    for (sa, ba), (sb, bb) in zip_longest(a.layout, b.layout, fillvalue=(None, None)):
        text_a = stage_text(ba) if ba else "nothing"
        text_b = stage_text(bb) if bb else "nothing"
        if text_a != text_b:
            lines.append(f"stage {sa or sb}: A {text_a} | B {text_b}")
    return _finding("blocks", f"blocks: A {layout_text(a)} | B {layout_text(b)}", lines)


def _block_findings(a: Analysis, b: Analysis) -> list[dict]:
    """Facts of each pair of blocks at the same place, grouped across blocks."""
    facts: dict[tuple, list[tuple[Block, Block, object]]] = {}
    for x, y in zip(a.blocks, b.blocks):
        for key, payload in _block_facts(x, y):
            facts.setdefault(key, []).append((x, y, payload))
    findings = []
    conv_fields: dict[tuple, list[str]] = {}  # (role, blocks) -> "field A .. | B .." parts
    for key, found in facts.items():
        pairs = [(x, y) for x, y, _ in found]
        place = where(pairs, a)
        kind = key[0]
        if kind == "conv":  # one line per conv and place, all its fields
            _, role, name, va, vb = key
            where_key = (role, tuple(x.index for x, _ in pairs))
            if where_key not in conv_fields:
                conv_fields[where_key] = []
                findings.append(_finding("conv", f"{role} of {place}: "))
                findings[-1]["_parts"] = conv_fields[where_key]
            conv_fields[where_key].append(f"{name} A {_show(va)} | B {_show(vb)}")
            continue
        if kind == "norm":
            findings.append(_finding("norm", f"normalisation of {place}: A {key[1]} | "
                                     f"B {key[2]}"))
            continue
        if kind == "stride":
            _, where_a, where_b, block_kind = key
            hint = ""
            if block_kind == "bottleneck" and {where_a, where_b} == {
                    "3x3 convolution", "first 1x1 convolution"}:
                v15 = "A" if where_a == "3x3 convolution" else "B"
                v1 = "B" if v15 == "A" else "A"
                hint = f"; {v15} is ResNet v1.5 (torchvision's), {v1} v1 (the paper's)"
            findings.append(_finding("stride", f"stride: in {place} the stride 2 sits on the "
                                     f"{where_a} in A and on the {where_b} in B{hint}"))
        elif kind == "width":
            findings.append(_width_finding(key, found, place))
        elif kind == "se":
            findings.append(_se_finding(found, place))
        elif kind == "eca":
            findings.append(_eca_finding(found, place))
        elif kind == "sk":
            findings.append(_sk_finding(found, place))
        elif kind == "wiring":
            findings.append(_finding("wiring", f"wiring of {place}: A {key[1]} | B {key[2]}"))
        elif kind == "shortcut":
            lines = [f"{x.name}: A {pa} | B {pb}" for x, _, (pa, pb) in found[:MAX_LINES]]
            if len(found) > MAX_LINES:
                lines.append(f"... and {len(found) - MAX_LINES} more")
            findings.append(_finding("shortcut", f"shortcuts of {place}: A {key[1]} | "
                                     f"B {key[2]}", lines))
        else:
            _, what, va, vb = key
            findings.append(_finding(kind, f"{what} of {place}: A {_show(va)} | B {_show(vb)}"))
    for finding in findings:
        if "_parts" in finding:
            finding["text"] += "; ".join(finding.pop("_parts"))
    return findings


def _freeze(value):
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _show(value) -> object:
    """A frozen attribute value as the report writes it: lists as lists, scalars as they are."""
    return [_show(v) for v in value] if isinstance(value, tuple) else value


WIRING_TEXT = {"post-activation": "post-activation (conv-BN-ReLU, a ReLU after the sum)",
               "pre-activation": "pre-activation (BN-ReLU-conv, nothing after the sum)",
               "improved": "improved (BN-conv-BN-PReLU-conv-BN, nothing after the sum: "
                           "ArcFace's IResNet)"}


def _branch(block: Block, rewired: bool) -> list[Entry]:
    """The residual branch without its SE, ECA or SK unit (a finding of its own: an SK unit
    stands for a convolution, which _sk_facts takes off the other side); between the two
    wirings without the BN-ReLU that a pre-activation block puts before its first
    convolution (the wiring finding names it)."""
    body = [e for e in block.body if e.op.type not in ("SE", "ECA", "SK")]
    if rewired:
        while body and body[0].op.type in ("BN", "ReLU", "PReLU"):
            body = body[1:]
    return body


def _se_width(op) -> tuple[int, int] | None:
    return None if op is None else (op.attrs["channels"], op.attrs["reduced"])


def _eca_k(op) -> int | None:
    return None if op is None else op.attrs["k"]


def _sk_label(op) -> str | None:
    return None if op is None else sk_text(op.attrs)


def _sk_finding(found: list, place: str) -> dict:
    """Selective-kernel units on one side only, or other ones: one line, the units per stage
    where they differ (`SK 2 branches (3x3, 3x3 dilation 2)`)."""
    by_stage: dict[int, tuple] = {}
    for _, _, (stage, la, lb) in found:
        by_stage.setdefault(stage, (la, lb))
    texts = []
    for side in (0, 1):
        labels = list(dict.fromkeys(by_stage[s][side] for s in sorted(by_stage)))
        texts.append("none" if labels == [None] else
                     ", ".join(str(label or "none") for label in labels))
    return _finding("sk", f"selective kernels of {place}: A {texts[0]} | B {texts[1]}")


def _eca_finding(found: list, place: str) -> dict:
    """ECA on one side only, or with other kernels: one line, the kernel per stage
    (`ECA k=5, 5, 5, 7`)."""
    by_stage: dict[int, tuple] = {}
    for _, _, (stage, ka, kb) in found:
        by_stage.setdefault(stage, (ka, kb))
    texts = []
    for side in (0, 1):
        kernels = [by_stage[s][side] for s in sorted(by_stage)]
        texts.append("none" if None in kernels else
                     "ECA k=" + ", ".join(str(k) for k in kernels))
    return _finding("eca", f"efficient channel attention of {place}: A {texts[0]} | "
                    f"B {texts[1]}")


def _se_finding(found: list, place: str) -> dict:
    """Squeeze-and-excitation on one side only, or with other widths: one line, the widths
    per stage and the rule that gives them (C // R, or timm's rounding to 8)."""
    by_stage: dict[int, tuple] = {}
    for _, _, (stage, wa, wb) in found:
        by_stage.setdefault(stage, (wa, wb))
    texts = []
    for side in (0, 1):
        widths = [by_stage[s][side] for s in sorted(by_stage)]
        texts.append("none" if None in widths else se_text(widths))
    return _finding("se", f"squeeze-and-excitation of {place}: A {texts[0]} | B {texts[1]}")


def _same_but_bn(x: Shortcut, y: Shortcut) -> bool:
    """Two projections that differ only in the BatchNorm after the convolution: the
    wirings' (a pre-activation projection has none, the next BN normalises the sum)."""
    if x.kind != "projection" or y.kind != "projection":
        return False
    conv_x = {k: v for k, v in x.attrs["conv"].items() if k != "shift"}
    conv_y = {k: v for k, v in y.attrs["conv"].items() if k != "shift"}
    return not attr_diff(conv_x, conv_y)


def _block_facts(x: Block, y: Block) -> list[tuple[tuple, object]]:
    facts: list[tuple[tuple, object]] = []
    rewired = x.wiring != y.wiring
    if rewired:
        facts.append((("wiring", WIRING_TEXT[x.wiring], WIRING_TEXT[y.wiring]), None))
    se_x, se_y = x.se, y.se
    if (se_x is None) != (se_y is None) or (se_x is not None and se_x.attrs != se_y.attrs):
        facts.append((("se", se_x is not None, se_y is not None),
                      (x.stage, _se_width(se_x), _se_width(se_y))))
    eca_x, eca_y = x.eca, y.eca
    if (eca_x is None) != (eca_y is None) or (eca_x is not None and eca_x.attrs != eca_y.attrs):
        facts.append((("eca", eca_x is not None, eca_y is not None),
                      (x.stage, _eca_k(eca_x), _eca_k(eca_y))))
    if _norm_keys(x) != _norm_keys(y):  # a GroupNorm on either side (BatchNorm: `shift`)
        facts.append((("norm", _norms(x), _norms(y)), None))
    sk_x, sk_y = x.sk, y.sk
    body_x, body_y = _branch(x, rewired), _branch(y, rewired)
    if (sk_x is None) != (sk_y is None) or (sk_x is not None and sk_x.attrs != sk_y.attrs):
        facts.append((("sk", sk_x is not None, sk_y is not None),
                      (x.stage, _sk_label(sk_x), _sk_label(sk_y))))
    if (sk_x is None) != (sk_y is None):
        # the plain side's convolution (and its BN and ReLU, which the SK unit's paths
        # have inside) where the other has its SK unit
        plain, unit = (body_y, x) if sk_y is None else (body_x, y)
        at = next(i for i, op in enumerate(unit.convs) if op.type == "SK")
        convs = [i for i, e in enumerate(plain) if e.op.type == "Conv"]
        if at < len(convs):
            end = convs[at] + 1
            while end < len(plain) and plain[end].op.type in ("BN", "ReLU"):
                end += 1
            del plain[convs[at]:end]
    types_x = [e.op.type for e in body_x]
    types_y = [e.op.type for e in body_y]
    split_x, split_y = kind_text(x), kind_text(y)
    if x.kind == y.kind == "res2net" and split_x != split_y:
        # another base width or scale: one finding, not the splits' ops one by one
        facts.append((("res2net", "Res2Net splits", split_x, split_y), None))
    elif types_x != types_y:
        facts.append((("body", "residual branch", " ".join(op_word(e.op) for e in body_x),
                       " ".join(op_word(e.op) for e in body_y)), None))
    else:
        conv_index = 0
        for ex, ey in zip(body_x, body_y):
            if ex.op.type == "Conv":
                fields = attr_diff(ex.op.attrs, ey.op.attrs)
                for name in ("stride", "group", "out_channels", "in_channels", "norm"):
                    fields.pop(name, None)
                if rewired:  # where BatchNorm sits is the wiring's, said once
                    fields.pop("shift", None)
                for name, (va, vb) in fields.items():
                    facts.append((("conv", _role(x, conv_index), name, _freeze(va),
                                   _freeze(vb)), None))
                conv_index += 1
            else:
                for name, (va, vb) in attr_diff(ex.op.attrs, ey.op.attrs).items():
                    facts.append((("op", f"{ex.op.type} {name}", _freeze(va), _freeze(vb)),
                                  None))
        cx, cy = x.convs, y.convs
        sx = [op.attrs["stride"] for op in cx]
        sy = [op.attrs["stride"] for op in cy]
        if sx != sy:
            at_x = [i for i, s in enumerate(sx) if s != [1, 1]]
            at_y = [i for i, s in enumerate(sy) if s != [1, 1]]
            if x.stride == y.stride and len(at_x) == len(at_y) == 1:
                facts.append((("stride", _role(x, at_x[0]), _role(y, at_y[0]), x.kind), None))
            else:
                facts.append((("op", "conv strides", tuple(s[0] for s in sx),
                               tuple(s[0] for s in sy)), None))
        shape_x = [(op.attrs["group"], op.attrs["out_channels"]) for op in cx]
        shape_y = [(op.attrs["group"], op.attrs["out_channels"]) for op in cy]
        if shape_x != shape_y:
            ratios = tuple(round(wx / wy, 3) if wy else None
                           for (_, wx), (_, wy) in zip(shape_x, shape_y))
            key = ("width", x.kind, tuple(g for g, _ in shape_x), tuple(g for g, _ in shape_y),
                   ratios)
            facts.append((key, (x.stage, inner_widths(x), inner_widths(y),
                                [w for _, w in shape_x], [w for _, w in shape_y])))
    jx, jy = x.join_entry, y.join_entry
    if jx.op.type != jy.op.type:
        facts.append((("op", "join", jx.op.type, jy.op.type), None))
    else:
        for name, (va, vb) in attr_diff(jx.op.attrs, jy.op.attrs).items():
            facts.append((("op", f"{jx.op.type} {name}", _freeze(va), _freeze(vb)), None))
    sx_, sy_ = jx.shortcut, jy.shortcut
    if not same_shortcut(jx, jy) and not (rewired and _same_but_bn(sx_, sy_)):
        facts.append((("shortcut", sx_.kind, sy_.kind), (sx_.describe(), sy_.describe())))
    post_x = " ".join(e.op.type for e in x.post) or "nothing"
    post_y = " ".join(e.op.type for e in y.post) or "nothing"
    if post_x != post_y and not rewired:
        facts.append((("post", "after the sum", post_x, post_y), None))
    return facts


def _norm(op) -> str:
    """What normalises a convolution's output in the canonical form (ops.py): its `norm`
    (a GroupNorm), else BatchNorm, also where folded into a bias (the canonical form does
    not tell those apart)."""
    if "norm" in op.attrs:
        return op.attrs["norm"]
    return "BatchNorm" if op.extra.get("bn") or op.attrs.get("shift") else "no norm"


def _norms(block: Block) -> str:
    """The norms after a block's convolutions and its shortcut's, e.g. 'GroupNorm 32'."""
    convs = list(block.convs) + [op for op in block.join_entry.shortcut.ops if op.type == "Conv"]
    return ", ".join(dict.fromkeys(_norm(op) for op in convs)) or "none"


def _norm_keys(block: Block) -> set:
    """Which GroupNorms (None: BatchNorm or none) a block's convolutions have, however many."""
    convs = list(block.convs) + [op for op in block.join_entry.shortcut.ops if op.type == "Conv"]
    return {op.attrs.get("norm") for op in convs}


def _width_finding(key: tuple, found: list, place: str) -> dict:
    _, kind, groups_a, groups_b, _ = key
    by_stage: dict[int, tuple] = {}
    convs: dict[int, tuple] = {}
    for _, _, (stage, inner_a, inner_b, widths_a, widths_b) in found:
        by_stage.setdefault(stage, (inner_a, inner_b))
        convs.setdefault(stage, (widths_a, widths_b))
    stages = sorted(by_stage)
    if all(by_stage[s][0] == by_stage[s][1] for s in stages):
        # the 3x3 and the output agree: another convolution is wider (SENet-154's first 1x1)
        lines = [f"stage {s}: A {', '.join(map(str, convs[s][0]))} | "
                 f"B {', '.join(map(str, convs[s][1]))}" for s in stages[:MAX_LINES]]
        return _finding("width", f"convolution widths of {place} (the 3x3 and the output "
                        "agree)", lines)

    def cardinality(inner: tuple[int, int, int]) -> str:
        width, _, groups = inner
        if groups > 1:
            return (f"cardinality {groups}, width per group {width // groups} "
                    f"({groups}x{width // groups}d)")
        return f"1 group, width {width}"

    first_a, first_b = by_stage[stages[0]]
    if kind == "bottleneck":
        what = "3x3 groups and widths" if groups_a != groups_b else "bottleneck widths"
    else:
        what = "widths"
    text = (f"{what} of {place}: A {cardinality(first_a)} | B {cardinality(first_b)} "
            f"(stage {stages[0]})")
    ratios = {round(by_stage[s][0][0] / by_stage[s][1][0], 3) for s in stages
              if by_stage[s][1][0]}
    if len(ratios) == 1 and groups_a == groups_b:
        ratio = ratios.pop()
        text += f"; A's inner width is {ratio:g}x B's"
    lines = [f"inner width by stage: A {', '.join(str(by_stage[s][0][0]) for s in stages)} | "
             f"B {', '.join(str(by_stage[s][1][0]) for s in stages)}"]
    if any(by_stage[s][0][1] != by_stage[s][1][1] for s in stages):
        lines.append(f"output width by stage: A {', '.join(str(by_stage[s][0][1]) for s in stages)}"
                     f" | B {', '.join(str(by_stage[s][1][1]) for s in stages)}")
    if groups_a != groups_b and kind != "bottleneck":
        lines.append(f"groups: A {list(groups_a)} | B {list(groups_b)}")
    return _finding("width", text, lines)


WINDOW_FIELDS = frozenset({"pad", "round_mode"})


def _window_text(attrs: dict) -> str:
    """'pads 1 and rounds down (torchvision's stem)': a 3x3/2 max pooling's windows, in the
    terms of STEM_POOLS (arch/spec.py)."""
    pad, mode = attrs["pad"][0], attrs["round_mode"]
    text = f"pads {pad} and rounds {'down' if mode == 'FLOOR' else 'up'}"
    if (attrs["pool"], attrs["kernel"], attrs["stride"]) == ("MAX", [3, 3], [2, 2]) \
            and attrs["pad"][0] == attrs["pad"][1]:
        for pool, (stem_pad, stem_mode) in STEM_POOLS.items():
            # where both roundings give one size (readers then write CEIL) the pad decides
            if pad == stem_pad and (mode == stem_mode or mode == "CEIL"):
                return text + f" ({STEM_NAMES[pool]})"
    return text


def _window_finding(part: str, ex: Entry, ey: Entry) -> dict:
    """The stem's pool1 placed differently: architecture (other windows, other numbers)."""
    a = ex.op.attrs
    name = "pool1" if part == "stem" else f"pooling {ex.op.name}"
    size = "x".join(map(str, a["out"]))
    offset = abs(a["pad"][0] - ey.op.attrs["pad"][0])
    line = (f"A {ex.op.name} | B {ey.op.name}: both {'x'.join(map(str, a['kernel']))} "
            f"{a['pool'].lower()} pooling, stride {a['stride'][0]}, output {size}; windows "
            f"{offset} pixel{'' if offset == 1 else 's'} apart: the same weights give other "
            "numbers")
    return _finding("stem_pool" if part == "stem" else "pool",
                    f"{name}: A {_window_text(a)}, B {_window_text(ey.op.attrs)}", [line])


def _ends(part: str, xs: list[Entry], ys: list[Entry]) -> list[dict]:
    """The stem (before the first block) or the head (after the last), op by op; a pooling
    whose windows alone differ (MSRA's vs torchvision's pool1) is a finding of its own."""
    tx = [e.op.type for e in xs]
    ty = [e.op.type for e in ys]
    if tx != ty:
        text_a = ", ".join(_op_text(e.op) for e in xs) or "nothing"
        text_b = ", ".join(_op_text(e.op) for e in ys) or "nothing"
        return [_finding(part, f"{part}: A {text_a} | B {text_b}")]
    lines = []
    windows = []
    for ex, ey in zip(xs, ys):
        fields = attr_diff(ex.op.attrs, ey.op.attrs)
        if ex.op.type == "Conv" and "norm" in fields:
            fields["norm"] = [_norm(ex.op), _norm(ey.op)]
        if ex.op.type == "Pool" and fields and set(fields) <= WINDOW_FIELDS:
            windows.append(_window_finding(part, ex, ey))
            continue
        if fields:
            values = "; ".join(f"{k} A {v[0]} | B {v[1]}" for k, v in fields.items())
            lines.append(f"{ex.op.type} {ex.op.name} | {ey.op.name}: {values}")
    if not lines:
        return windows
    return windows + [_finding(part, f"{part}: {len(lines)} op(s) differ", lines)]


def _op_findings(result: "DiffResult", shortcuts: bool) -> list[dict]:
    """No blocks to speak of (plain nets, or other graphs): op-level differences, grouped
    by op type and the fields that differ."""
    findings = []
    groups: dict[tuple, list[dict]] = {}
    for d in result.layer_differences:
        key = (d["type"], repr(sorted((k, v) for k, v in d["fields"].items())))
        groups.setdefault(key, []).append(d)
    for (type_, _), found in groups.items():
        fields = "; ".join(f"{k} A {v[0]} | B {v[1]}" for k, v in found[0]["fields"].items())
        names = ", ".join(d["a"][0] for d in found[:MAX_NAMES])
        more = f" and {len(found) - MAX_NAMES} more" if len(found) > MAX_NAMES else ""
        findings.append(_finding("ops", f"{type_} ({len(found)}: {names}{more}): {fields}"))
    if shortcuts:
        kinds: dict[tuple, list[dict]] = {}
        for d in result.shortcut_differences:
            kinds.setdefault((d["a"]["kind"], d["b"]["kind"]), []).append(d)
        for (ka, kb), found in kinds.items():
            names = ", ".join(d["a"]["block"] or d["b"]["block"] for d in found[:MAX_NAMES])
            findings.append(_finding("shortcut", f"shortcuts of {len(found)} block(s) "
                                     f"({names}): A {ka} | B {kb}"))
    structural = result.structural_differences
    if structural:
        lines = []
        for d in structural[:MAX_LINES]:
            xa = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["a"]) or "nothing"
            xb = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["b"]) or "nothing"
            lines.append(f"A: {xa} (after {d['after_a']}) | B: {xb} (after {d['after_b']})")
        if len(structural) > MAX_LINES:
            lines.append(f"... and {len(structural) - MAX_LINES} more")
        findings.append(_finding("structure", f"ops on one side only: {len(structural)} "
                                 "place(s)", lines))
    return findings


# --------------------------------------------------------------------------- representation


def _bn_text(rep) -> str:
    parts = []
    if rep.bn_in_conv:
        parts.append(f"{rep.bn_in_conv} convolutions followed by BatchNorm")
    if rep.folded:
        parts.append(f"{rep.folded} convolutions with a bias and no BatchNorm (folded)")
    return " and ".join(parts) or "no BatchNorm after its convolutions"


def representation_notes(result: "DiffResult") -> list[str]:
    """What the canonical form ignored, where the two sides write it differently."""
    ra, rb = result.a.representation, result.b.representation
    notes = []
    if (ra.bn_in_conv > 0, ra.folded > 0) != (rb.bn_in_conv > 0, rb.folded > 0):
        notes.append(f"BatchNorm: A has {_bn_text(ra)}; B {_bn_text(rb)}: each compared as "
                     "one convolution with a per-channel shift")
    if bool(ra.bn_in_fc) != bool(rb.bn_in_fc):
        side, rep = ("A", ra) if ra.bn_in_fc else ("B", rb)
        other = "B" if side == "A" else "A"
        notes.append(f"BatchNorm after the fc: {side} has one ({', '.join(rep.bn_in_fc)}), "
                     f"{other} has it folded into the fc (the dynamo exporter's Gemm): "
                     "compared as one fc with a per-feature shift")
    same_bias = ra.bias_before_bn == rb.bias_before_bn
    for side, rep in (("A", ra), ("B", rb)):
        if rep.bias_before_bn and same_bias:
            if side == "A":
                notes.append(f"A and B: a conv bias directly before BatchNorm ("
                             f"{', '.join(rep.bias_before_bn[:MAX_NAMES])}), which BatchNorm "
                             "cancels")
        elif rep.bias_before_bn:
            notes.append(f"{side}: a conv bias directly before BatchNorm ("
                         f"{', '.join(rep.bias_before_bn[:MAX_NAMES])}), which BatchNorm cancels")
        if rep.zero_bias:
            notes.append(f"{side}: {len(rep.zero_bias)} bias(es) of zeros read as none "
                         f"({', '.join(rep.zero_bias[:MAX_NAMES])})")
    if bool(ra.zeros_before) != bool(rb.zeros_before):
        side, rep = ("A", ra) if ra.zeros_before else ("B", rb)
        other = "B" if side == "A" else "A"
        notes.append(f"option A: {side} puts the zero channels on both sides of the subsampled "
                     f"input ({len(rep.zeros_before)} shortcut(s): "
                     f"{', '.join(rep.zeros_before[:MAX_NAMES])}), {other} after it: the same "
                     "network up to a fixed permutation of channels")
    if (ra.softmax is None) != (rb.softmax is None):
        side, name = ("A", ra.softmax) if ra.softmax else ("B", rb.softmax)
        notes.append(f"Softmax: {side} ends in Softmax ({name}), the other in logits; "
                     "compared up to the logits")
    # Flatten, Dropout and flattening Reshapes are not noted: whether they survive as IR
    # layers depends on the importer (a Flatten before Gemm is folded), not on the network;
    # their counts are in --json (representation.skipped).
    hows_a = sorted({how for _, how in ra.global_pool})
    hows_b = sorted({how for _, how in rb.global_pool})
    if hows_a != hows_b:
        notes.append(f"global pooling: A {', '.join(hows_a) or 'none'} | "
                     f"B {', '.join(hows_b) or 'none'}")
    layouts = (result.a.side.input_layout, result.b.side.input_layout)
    if layouts[0] != layouts[1]:
        side = "A" if layouts[0] == "NHWC" else "B"
        notes.append(f"input layout: {side}'s file takes channels-last (NHWC) images; its "
                     "network is read with the same image channels-first (the transposition "
                     "outside the network)")
    batch_a = [blob.shape[0] for blob in result.a.side.graph.inputs]
    batch_b = [blob.shape[0] for blob in result.b.side.graph.inputs]
    if batch_a != batch_b and result.input_difference is None:
        notes.append(f"batch: A {batch_a} | B {batch_b}")
    totals = result.totals
    if not result.findings and totals["a"]["parameters"] != totals["b"]["parameters"]:
        notes.append(f"parameters as stored: A {totals['a']['parameters']:,} | "
                     f"B {totals['b']['parameters']:,} (a folded BatchNorm is one bias per "
                     "channel, BatchNorm + Scale two learned values; a conv bias before "
                     "BatchNorm counts too)")
    return notes
