"""The main path of a logical op graph, its residual blocks and their shortcuts.

A walk from the input follows the main path; where the path forks, the join is the fork's
immediate post-dominator, the branch with the most convolutions stays on the main path and
the others are the block's shortcut, classified as identity, projection (conv + BN) or
zero-pad (option A: subsample + zero channels). Everything is a loop: nets have thousands of
layers.

The path is then cut into stem, blocks and head, and blocks into stages (a block that
subsamples starts a new one), so that the report can speak of "the first block of stage 3"
and of basic and bottleneck blocks instead of op positions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from netgen.arch.counting import Counts, count
from netgen.arch.spec import se_width_of
from netgen.analysis.network import Side
from netgen.analysis.ops import Op, Representation, logical_ops

ZERO_PAD_TYPES = frozenset({"Subsample", "Zeros", "Concat", "Pool", "Slice", "Reshape"})
IMPROVED_BODY = ["Conv", "PReLU", "Conv"]  # after the opening BN, BatchNorms left out
FIRST_STAGE = 2  # the paper's conv2_x: conv1 (and pool1) are stage 1, the stem


@dataclass
class Shortcut:
    kind: str  # "identity", "projection", "pooled-projection" (ResNet-D), "zero-pad",
    # "subsample" (a 1x1 max pooling, Keras's V2), "none" (plain) or "other"
    ops: list[Op]
    attrs: dict

    def describe(self) -> str:
        a = self.attrs
        if self.kind in ("projection", "pooled-projection"):
            conv = a["conv"]
            pool = ""
            if "pool" in a:
                pool = (f"{'x'.join(map(str, a['pool']['kernel']))} avg pool /"
                        f"{a['pool']['stride'][0]}, ")
            text = (f"{self.kind.replace('-', ' ')} ({pool}{'x'.join(map(str, conv['kernel']))} "
                    f"conv, {conv['out_channels']} channels, stride {conv['stride'][0]}")
            return text + (", BN)" if a.get("bn") else ")")
        if self.kind == "zero-pad":
            parts = []
            if a.get("stride", [1, 1]) != [1, 1]:
                parts.append(f"subsample stride {a['stride'][0]}")
            if a.get("zero_channels"):
                parts.append(f"+{a['zero_channels']} zero channels")
            return "zero-pad (" + ", ".join(parts or ["no change"]) + ")"
        if self.kind == "other":
            return "other (" + ", ".join(op.type for op in self.ops) + ")"
        if self.kind == "subsample":
            return f"subsample (1x1 max pool, stride {a['stride'][0]})"
        return self.kind


@dataclass
class Entry:
    """One step of the main path: an op, and for a block's join also its shortcut."""

    op: Op
    block: int | None = None  # index of the block this op ends (joins only)
    shortcut: Shortcut | None = None


@dataclass
class Block:
    """One residual block: `body` its residual branch (entries[start:join]), then its join
    and the ops after the join up to the next block (`post`, e.g. the ReLU)."""

    index: int
    stage: int
    position: int  # in its stage, from 0
    start: int
    join: int
    end: int  # entries[join + 1:end] is `post`
    entries: list[Entry] = field(repr=False)

    @property
    def body(self) -> list[Entry]:
        return self.entries[self.start:self.join]

    @property
    def post(self) -> list[Entry]:
        return self.entries[self.join + 1:self.end]

    @property
    def join_entry(self) -> Entry:
        return self.entries[self.join]

    @property
    def convs(self) -> list[Op]:
        """The branch's convolutions; a selective-kernel unit (ops.py's `SK` op, with its
        first path's kernel and the unit's stride and widths) in the place of the one it
        stands for."""
        return [e.op for e in self.body if e.op.type in ("Conv", "SK")]

    @property
    def name(self) -> str:
        """The block as its file names it: res3a, or /layer2/layer2.0 for an export's Add."""
        name = self.join_entry.op.name
        for suffix in ("/Add", "/Sum"):
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[:-len(suffix)]
        return name

    @property
    def wiring(self) -> str:
        """post-activation (the paper's: a ReLU follows the sum), pre-activation (He et
        al., ECCV 2016: the sum goes on as it is, to the next block's or the head's BN-ReLU),
        or improved (ArcFace's IResNet: BN, conv, BN, PReLU, conv, BN, nothing after the sum;
        with the BatchNorms after the convolutions part of them in the canonical form)."""
        post = self.post
        if post and post[0].op.type == "ReLU":
            return "post-activation"
        types = [e.op.type for e in self.body]
        if types[:1] == ["BN"] and [t for t in types[1:] if t != "BN"] == IMPROVED_BODY:
            return "improved"
        return "pre-activation"

    @property
    def se(self) -> Op | None:
        """The block's squeeze-and-excitation unit (ops.py folds one into an `SE` op)."""
        return next((e.op for e in self.body if e.op.type == "SE"), None)

    @property
    def eca(self) -> Op | None:
        """The block's ECA unit (ops.py folds one into an `ECA` op)."""
        return next((e.op for e in self.body if e.op.type == "ECA"), None)

    @property
    def sk(self) -> Op | None:
        """The block's selective-kernel unit (ops.py folds one into an `SK` op)."""
        return next((e.op for e in self.body if e.op.type == "SK"), None)

    @property
    def res2net(self) -> dict | None:
        """A Res2Net block's split width and scale (timm's Bottle2neck: a 1x1, a Slice of
        its output into `scale` splits, a 3x3 on each but the last, their Concat, a 1x1),
        else None."""
        slices = [e.op for e in self.body if e.op.type == "Slice" and e.op.attrs["axis"] == 1]
        kernels = [tuple(op.attrs["kernel"]) for op in self.convs]
        if len(slices) != 1 or len(kernels) < 3 or kernels[0] != (1, 1) \
                or kernels[-1] != (1, 1) or set(kernels[1:-1]) != {(3, 3)} \
                or len(kernels) - 1 != slices[0].attrs["tops"] \
                or not any(e.op.type == "Concat" for e in self.body):
            return None
        return {"width": self.convs[1].attrs["out_channels"], "scale": slices[0].attrs["tops"]}

    @property
    def kind(self) -> str:
        """basic (3x3, 3x3), bottleneck (1x1, 3x3, 1x1), res2net (Res2Net's split 3x3s
        between the 1x1s), or the kernels as written."""
        if self.res2net is not None:
            return "res2net"
        kernels = [tuple(op.attrs["kernel"]) for op in self.convs]
        if kernels == [(3, 3), (3, 3)]:
            return "basic"
        if kernels == [(1, 1), (3, 3), (1, 1)]:
            return "bottleneck"
        return "-".join("x".join(map(str, k)) for k in kernels) or "conv-less"

    @property
    def stride(self) -> int:
        product = 1
        # a Res2Net block's split 3x3s run side by side: one of them strides the block
        for op in self.convs[:2] + self.convs[-1:] if self.res2net else self.convs:
            product *= op.attrs["stride"][0]
        shortcut = self.join_entry.shortcut
        if product == 1 and shortcut is not None and shortcut.kind in ("zero-pad", "subsample"):
            product = shortcut.attrs.get("stride", [1])[0]
        return product


def _postdominators(ops: list[Op], succ: list[list[int]]) -> list[int]:
    """Immediate post-dominators; ids are topological, the virtual sink is len(ops)."""
    sink = len(ops)
    ipdom = [sink] * (sink + 1)
    for n in range(sink - 1, -1, -1):
        following = succ[n] or [sink]
        candidate = following[0]
        for other in following[1:]:
            a, b = candidate, other
            while a != b:
                while a < b:
                    a = ipdom[a]
                while b < a:
                    b = ipdom[b]
            candidate = a
        ipdom[n] = candidate
    return ipdom


def _classify_shortcut(branches: list[list[Op]], direct: bool) -> Shortcut:
    if direct and not branches:
        return Shortcut("identity", [], {})
    if len(branches) != 1 or direct:
        ops = [op for branch in branches for op in branch]
        return Shortcut("other", ops, {"types": [op.type for op in ops]})
    ops = branches[0]
    types = [op.type for op in ops]
    convs = [op for op in ops if op.type == "Conv"]
    if len(convs) == 1 and set(types) <= {"Conv", "BN"}:
        return Shortcut("projection", ops, {"conv": dict(convs[0].attrs), "bn": "BN" in types})
    if len(convs) == 1 and types[0] == "Pool" and set(types[1:]) <= {"Conv", "BN"} \
            and ops[0].attrs["pool"] == "AVE" and not ops[0].attrs.get("global"):
        # ResNet-D: average pooling, then the 1x1 convolution with stride 1
        pool = {k: ops[0].attrs[k] for k in ("kernel", "stride") if k in ops[0].attrs}
        return Shortcut("pooled-projection", ops, {"pool": pool, "conv": dict(convs[0].attrs),
                                                   "bn": "BN" in types})
    if types == ["Pool"] and ops[0].attrs.get("pool") == "MAX" and ops[0].attrs.get("kernel") \
            == [1, 1] and ops[0].attrs.get("stride", [1, 1]) != [1, 1]:
        # Keras's ResNet V2: the subsampling block's shortcut is a 1x1 max pooling
        return Shortcut("subsample", ops, {"stride": ops[0].attrs["stride"]})
    if set(types) <= ZERO_PAD_TYPES:
        stride = next((op.attrs["stride"] for op in ops if op.type == "Subsample"), [1, 1])
        concat = next((op for op in ops if op.type == "Concat"), None)
        zeros = sum(1 for op in ops if op.type == "Zeros")
        width = concat.attrs["out_channels"] if concat else None
        attrs = {"stride": stride, "out_channels": width}
        if concat is not None and zeros:
            base = next((op.attrs["channels"] for op in ops if op.type == "Zeros"), 0)
            attrs["zero_channels"] = width - base
        return Shortcut("zero-pad", ops, attrs)
    return Shortcut("other", ops, {"types": types})


def main_path(ops: list[Op], start: int) -> tuple[list[Entry], set[int], list[tuple[int, int]]]:
    """The main path from op `start`, the ids of every op it (or a shortcut) covers, and
    each block's (first entry, join entry) indices."""
    n = len(ops)
    succ: list[list[int]] = [[] for _ in range(n)]
    for op in ops:
        for source in dict.fromkeys(op.inputs):
            succ[source].append(op.id)
    ipdom = _postdominators(ops, succ)
    entries: list[Entry] = []
    spans: list[tuple[int, int]] = []
    covered = {start}
    cur, blocks = start, 0
    while cur < n and succ[cur]:
        join = ipdom[cur]
        if len(succ[cur]) == 1 and succ[cur][0] == join:
            entries.append(Entry(ops[join]))
            covered.add(join)
            cur = join
            continue
        # A fork: collect the ops between `cur` and its join, split into branches.
        between: set[int] = set()
        stack = [s for s in succ[cur] if s != join]
        while stack:
            node = stack.pop()
            if node in between or node == join or node >= n:
                continue
            between.add(node)
            stack.extend(s for s in succ[node] if s != join)
        branches = _components(ops, between, succ)
        direct = join < n and cur in ops[join].inputs
        main_index = max(range(len(branches)), default=None, key=lambda i: (
            sum(1 for op in branches[i] if op.type == "Conv"), len(branches[i]), -branches[i][0].id))
        main = branches.pop(main_index) if main_index is not None else []
        first = len(entries)
        for op in main:
            entries.append(Entry(op))
        covered.update(between)
        if join >= n:
            break
        shortcut = _classify_shortcut(branches, direct)
        spans.append((first, len(entries)))
        entries.append(Entry(ops[join], block=blocks, shortcut=shortcut))
        blocks += 1
        covered.add(join)
        cur = join
    return entries, covered, spans


def _components(ops: list[Op], between: set[int], succ: list[list[int]]) -> list[list[Op]]:
    """Connected parts of `between` (undirected), each in topological order."""
    neighbours: dict[int, set[int]] = {i: set() for i in between}
    for i in between:
        for s in succ[i]:
            if s in between:
                neighbours[i].add(s)
                neighbours[s].add(i)
    seen: set[int] = set()
    parts = []
    for i in sorted(between):
        if i in seen:
            continue
        part, stack = [], [i]
        seen.add(i)
        while stack:
            node = stack.pop()
            part.append(node)
            for other in neighbours[node]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        parts.append([ops[j] for j in sorted(part)])
    return parts


POST_TYPES = frozenset({"ReLU", "PReLU", "BN"})


def cut_blocks(entries: list[Entry], spans: list[tuple[int, int]]) -> list[Block]:
    """Blocks from the joins' spans. A block that widens the stream opens a stage, and so
    does one that subsamples, unless the next block widens: Keras's ResNet V2 subsamples
    in the last block of a stage (the paper's nets in the first, where they also widen)."""
    blocks: list[Block] = []
    stage, position = FIRST_STAGE - 1, 0
    widths = [entries[join].op.shape[1] if len(entries[join].op.shape) > 1 else 0
              for _, join in spans]
    for index, (start, join) in enumerate(spans):
        if index + 1 < len(spans):
            end = spans[index + 1][0]
        else:
            end = join + 1
            while end < len(entries) and entries[end].op.type in POST_TYPES:
                end += 1
        block = Block(index, stage, position, start, join, end, entries)
        widens = index > 0 and widths[index] != widths[index - 1]
        next_widens = index + 1 < len(spans) and widths[index + 1] != widths[index]
        if index == 0 or widens or (block.stride > 1 and not next_widens):
            stage, position = stage + 1, 0
        block.stage, block.position = stage, position
        position += 1
        blocks.append(block)
    return blocks


@dataclass
class Analysis:
    """One side seen by diff: its logical ops, main path, blocks and representation."""

    side: Side
    ops: list[Op]
    entries: list[Entry]
    covered: set[int]
    blocks: list[Block]
    representation: Representation

    @cached_property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.type for op in self.ops if op.type != "Input").items()))

    @cached_property
    def counts(self) -> Counts:
        """The side's parameters, multiply-adds and layer types, counted once."""
        return count(self.side.graph)

    @property
    def stem(self) -> list[Entry]:
        return self.entries[:self.blocks[0].start] if self.blocks else list(self.entries)

    @property
    def head(self) -> list[Entry]:
        """After the last block; an IResNet's head starts with the BN over the last map
        (the "BN, fc 512, BN" of its embedding), which the last block's `post` also holds."""
        if not self.blocks:
            return []
        if self.blocks[-1].wiring == "improved":
            return self.entries[self.blocks[-1].join + 1:]
        return self.entries[self.blocks[-1].end:]

    @cached_property
    def layout(self) -> list[tuple[int, list[Block]]]:
        """(stage number, its blocks) in order."""
        stages: dict[int, list[Block]] = {}
        for block in self.blocks:
            stages.setdefault(block.stage, []).append(block)
        return list(stages.items())

    @property
    def depth(self) -> int:
        """Weighted layers on the main path, as the paper counts depth (ResNet-50: 50). A
        Res2Net block's split 3x3s are one layer, as Gao et al. and timm count them
        (res2net50_26w_4s is a 50-layer net, though its first split's path has 82)."""
        weighted = ("Conv", "FC", "SK")
        depth = sum(1 for e in self.entries if e.op.type in weighted)
        for block in self.blocks:
            if block.kind == "res2net":
                depth -= sum(1 for e in block.body if e.op.type in weighted) - 3
        return depth


def analyse(side: Side, canonical: bool = False) -> Analysis:
    weights = side.weights if (canonical and side.weights_are_data) else None
    ops, inputs, rep = logical_ops(side.graph, canonical, weights)
    entries, covered, spans = main_path(ops, inputs[0])
    return Analysis(side, ops, entries, covered, cut_blocks(entries, spans), rep)


# --------------------------------------------------------------------------- description


def inner_widths(block: Block) -> tuple[int, int, int]:
    """(inner width, output width, groups) of a block: the 3x3's width for a bottleneck."""
    convs = block.convs
    if not convs:
        return 0, 0, 1
    inner = convs[1] if block.kind in ("bottleneck", "res2net") else convs[0]
    return (inner.attrs["out_channels"], convs[-1].attrs["out_channels"],
            max(op.attrs["group"] for op in convs))


def res2net_base_width(block: Block) -> int | None:
    """A Res2Net block's base width (timm's base_width, the 26 of 26w): its split width
    over its planes (a quarter of its output), x 64; None for other blocks."""
    found = block.res2net
    planes = block.convs[-1].attrs["out_channels"] // 4 if found else 0
    if not found or not planes:
        return None
    return found["width"] * 64 // planes


def kind_text(block: Block) -> str:
    """The block's kind in words: basic, bottleneck, Res2Net 26w x 4 ..."""
    found = block.res2net
    if found is None:
        return block.kind
    return f"Res2Net {res2net_base_width(block)}w x {found['scale']}"


def stage_text(blocks: list[Block]) -> str:
    kinds = Counter(kind_text(b) for b in blocks)
    kind = next(iter(kinds)) if len(kinds) == 1 else "mixed"
    inner, out, groups = inner_widths(blocks[0])
    width = f"width {inner}" + (f" -> {out}" if out != inner else "")
    if groups > 1:
        width += f", {groups} groups of {inner // groups}"
    return f"{len(blocks)} {kind} block{'s' if len(blocks) != 1 else ''}, {width}"


def architecture(analysis: Analysis) -> dict:
    """The side as the paper's tables describe it: blocks per stage, kind, widths, depth."""
    stages = []
    for stage, blocks in analysis.layout:
        inner, out, groups = inner_widths(blocks[0])
        kinds = sorted({b.kind for b in blocks})
        stages.append({"stage": stage, "blocks": len(blocks),
                       "kind": kinds[0] if len(kinds) == 1 else "mixed",
                       "inner_width": inner, "out_width": out, "groups": groups,
                       "shortcuts": dict(sorted(Counter(
                           b.join_entry.shortcut.kind for b in blocks).items()))})
    return {"depth": analysis.depth, "blocks": len(analysis.blocks), "stages": stages,
            "text": layout_text(analysis)}


def layout_text(analysis: Analysis) -> str:
    if not analysis.blocks:
        return f"no residual blocks (plain), depth {analysis.depth}"
    kinds = sorted({kind_text(b) for b in analysis.blocks})
    kind = kinds[0] if len(kinds) == 1 else "/".join(kinds)
    counts = "-".join(str(len(blocks)) for _, blocks in analysis.layout)
    return f"{len(analysis.blocks)} {kind} blocks {counts}, depth {analysis.depth}"


SE_REDUCTIONS = (16, 8, 4, 32, 2, 64)


def se_rule(widths: list[tuple[int, int]]) -> tuple[int, str] | None:
    """(R, rule) of SE units reducing C channels to r, (C, r) per stage: "floor" (C // R,
    SENet's files and hand-written code) or "timm" (C / R rounded to a multiple of 8), the
    rule named "floor" where both give the widths; None if no R of the usual ones fits."""
    for reduction in SE_REDUCTIONS:
        for rule in ("floor", "timm"):
            if all(se_width_of(c, reduction, rule) == r for c, r in widths):
                return reduction, rule
    return None


def se_text(widths: list[tuple[int, int]]) -> str:
    """'SE 64 -> 4, 128 -> 8 (C // 16)' or '... (C / 16 rounded to a multiple of 8, timm's)'."""
    shown = ", ".join(f"{c} -> {r}" for c, r in widths)
    found = se_rule(widths)
    if found is None:
        return f"SE {shown}"
    reduction, rule = found
    how = f"C // {reduction}" if rule == "floor" else \
        f"C / {reduction} rounded to a multiple of 8, timm's"
    return f"SE {shown} ({how})"


# --------------------------------------------------------------------------- stages


def layer_stages(analysis: Analysis) -> tuple[dict[str, str], dict[str, int]]:
    """(IR layer -> stage label, stage label -> blocks), the labels Table 1's: conv1 (the
    stem), conv2_x ..., head. The topology tells them where a file's layer names do not
    (an export's /layer1/..., a dynamo export's node_conv2d_3, Keras's names): a layer on
    the main path or in a shortcut takes its block's stage; one off both (an SE unit's
    ops, a BatchNorm folded into a Scale) that of the layer before it in the file."""
    if not analysis.blocks:
        return {}, {}
    # a block is its branch, its join and the activation after the join (post-activation);
    # a pre-activation BN-ReLU before the next fork belongs to the block that reads it
    # (the paper's framework, and the builder's labels), the last one to the head
    first = analysis.blocks[0]
    label_of_entry = ["conv1"] * first.start
    own_entry = bool(first.body) and first.body[0].op.type in ("BN", "ReLU", "PReLU")
    # a stem conv straight into the first BN-ReLU, unless the block has its own after the
    # stem's (the CIFAR code's SENet18: conv1, BN-ReLU, then the block's BN-ReLU)
    if first.wiring == "pre-activation" and not own_entry:
        index = first.start
        while index > 0 and analysis.entries[index - 1].op.type in ("BN", "ReLU", "PReLU"):
            index -= 1
        if index > 0 and analysis.entries[index - 1].op.type == "Conv":
            label_of_entry[index:] = [f"conv{first.stage}_x"] * (first.start - index)
    blocks: dict[str, int] = {}
    for block, following in zip(analysis.blocks, analysis.blocks[1:] + [None]):
        label = f"conv{block.stage}_x"
        blocks[label] = blocks.get(label, 0) + 1
        label_of_entry += [label] * (block.join + 1 - block.start)
        stop = following.start if following else len(analysis.entries)
        index = block.join + 1
        while index < stop and analysis.entries[index].op.type in ("ReLU", "PReLU"):
            label_of_entry.append(label)
            index += 1
        after = f"conv{following.stage}_x" if following else "head"
        label_of_entry += [after] * (stop - index)
    labels: dict[str, str] = {}
    for entry, label in zip(analysis.entries, label_of_entry):
        for op in [entry.op] + (entry.shortcut.ops if entry.shortcut else []):
            for name in op.layers:
                labels.setdefault(name, label)
    stages, previous = {}, "conv1"
    for layer in analysis.side.graph.layers:
        previous = labels.get(layer.name, previous)
        stages[layer.name] = previous
    return stages, blocks
