"""What a drawing shows, and where: a network's main path as Figure 3's column of boxes.

The picture is computed from the graph IR, never from a file's text, so a prototxt, an ONNX
file and a fresh build draw alike. The main path and each block's shortcut (identity,
projection, option A's zero-padding) come from netgen.analysis (as diff sees them), the
stage of a box from the IR's stage labels, the figures under a column from
`netgen.arch.counting` (the numbers `netgen summary` prints). This module decides boxes,
arcs, labels and coordinates; `draw.py` only turns them into SVG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netgen.analysis.ops import logical_ops, sk_text
from netgen.analysis.topology import Entry, main_path
from netgen.arch import ir
from netgen.arch.counting import count

# Ops the paper does not draw as boxes: BatchNorm/Scale/ReLU follow every conv (the legend
# says so), the softmax follows the fc, the addition is where a shortcut lands.
HIDDEN_OPS = frozenset({"BN", "Scale", "Bias", "ReLU", "Softmax", "Reshape", "Add"})
WEIGHTED_OPS = frozenset({"Conv", "FC"})
BLOCKS_ABOVE = 50  # weighted layers above which --blocks is the default
# A block's convolutions as the builder names them (res3a_branch2a, res4b22_branch2c): how a
# plain net, which has no shortcut to show where a block ends, still groups into blocks.
_PLAIN_BLOCK = re.compile(r"^res(\d+[a-z]\d*)_branch2")

# Geometry, in SVG user units (px).
BOX_W = 168
BOX_H = 24
GAP = 16  # between two boxes: the arrow
LEFT = 112  # stage and size labels, repeat brackets
RIGHT = 78  # shortcut arcs and their marks
COLUMN_GAP = 24
TOP = 58  # title lines
CAPTION = 78  # name, depth, parameters, multiply-adds
ARC_BULGE = 44


@dataclass(frozen=True)
class Box:
    """One box of the column. `layers` are every IR layer it stands for: the conv and the
    BatchNorm, Scale and ReLU that follow it, so a difference in any of them lights it up."""

    label: str
    kind: str  # "input", "conv", "pool", "fc" or "op"
    stage: str
    size: str  # output size "56x56", "" where not spatial
    layers: tuple[str, ...]
    unit: int  # the block it belongs to, or a unit of its own
    key: str = ""  # the first IR layer of its own op: how an alignment names the box


@dataclass(frozen=True)
class Arc:
    """One block's shortcut, from the gap above box `first` to the gap below box `last`."""

    first: int
    last: int
    kind: str  # "identity", "projection", "pooled-projection", "zero-pad" or "other"
    text: str  # the diff job's description: "projection (1x1 conv, 128 channels, stride 2, BN)"
    layers: tuple[str, ...]  # the join and the shortcut's own layers


@dataclass(frozen=True)
class Picture:
    """A network as Figure 3 sees it, before any coordinates."""

    title: str
    source: str
    boxes: tuple[Box, ...]
    arcs: tuple[Arc, ...]
    depth: int  # weighted layers on the main path: the paper's "34-layer"
    params: int
    macs: int
    preact: bool = False  # BN-ReLU before each conv, nothing after the sum (ECCV 2016)
    improved: bool = False  # ArcFace's IResNet: BN-conv-BN-PReLU-conv-BN, embedding head


def _preactivated(graph: ir.Graph) -> bool:
    """A pre-activation network: some BatchNorm reads a residual sum directly."""
    sums = {top for layer in graph.layers if layer.type == "Eltwise" for top in layer.tops}
    return any(layer.type == "BatchNorm" and layer.bottoms[0] in sums for layer in graph.layers)


def _improved(graph: ir.Graph) -> bool:
    """ArcFace's IResNet: a BatchNorm reads a residual sum (the next block's opening BN) and
    PReLU is the activation."""
    return _preactivated(graph) and any(layer.type == "PReLU" for layer in graph.layers)


def _main_path(graph: ir.Graph) -> list[Entry]:
    """The main path with each join's classified shortcut, as netgen.analysis sees it (the
    ops as written: a drawing shows every layer the file has)."""
    ops, inputs, _ = logical_ops(graph)
    entries, _, _ = main_path(ops, inputs[0])
    return entries


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}" if len(shape) == 4 else ""


def _pair(values: list[int], sep: str = "x") -> str:
    return str(values[0]) if values[0] == values[1] else sep.join(str(v) for v in values)


def box_label(op_type: str, attrs: dict) -> tuple[str, str]:
    """(label, kind) in the paper's words: `3x3 conv, 128, /2`, `pool, /2`, `avg pool`, `fc 1000`."""
    if op_type == "Conv":
        text = f"{attrs['kernel'][0]}x{attrs['kernel'][1]} conv, {attrs['out_channels']}"
        if attrs["stride"] != [1, 1]:
            text += f", /{_pair(attrs['stride'])}"
        if attrs["dilation"] != [1, 1]:
            text += f", dilation {_pair(attrs['dilation'])}"
        if attrs["group"] != 1:
            text += f", g{attrs['group']}"
        return text, "conv"
    if op_type == "Pool":
        name = "pool" if attrs["pool"] == "MAX" else "avg pool" if attrs["pool"] == "AVE" else (
            f"{attrs['pool'].lower()} pool")
        if attrs.get("global"):
            return ("avg pool" if attrs["pool"] == "AVE" else f"global {name}"), "pool"
        if attrs["stride"] != [1, 1]:
            name += f", /{_pair(attrs['stride'])}"
        return name, "pool"
    if op_type == "FC":
        return f"fc {attrs['out_features']}", "fc"
    if op_type == "SE":
        return f"SE, {attrs['channels']} -> {attrs['reduced']}", "op"
    if op_type == "ECA":
        return f"ECA k={attrs['k']}, {attrs['channels']}", "op"
    if op_type == "SK":
        text = f"{sk_text(attrs)}, {attrs['out_channels']}"
        if attrs["stride"] != [1, 1]:
            text += f", /{_pair(attrs['stride'])}"
        return text, "op"
    if op_type == "SplitAttention":
        text = f"split attention radix {attrs['radix']}, {attrs['channels']}"
        if attrs["cardinality"] != 1:
            text += f", cardinality {attrs['cardinality']}"
        return text, "op"
    if op_type == "PReLU":
        return "PReLU", "op"
    if op_type == "GroupNorm":
        return f"GroupNorm {attrs['groups']}", "op"
    if op_type == "Pad":
        return f"pad {_pair(attrs['pads'])}", "op"
    if op_type == "BlurPool":
        kernel = "x".join(str(k) for k in attrs["kernel"])
        return f"blur pool {kernel}, /{_pair(attrs['stride'])}", "pool"
    if op_type == "Subsample" and attrs["stride"] == [1, 1] and "pad" in attrs:
        return f"zero pad {_pair(attrs['pad'])}", "op"
    if op_type == "Subsample":
        text = f"subsample, /{_pair(attrs['stride'])}"
        return text + (f", zero pad {_pair(attrs['pad'])}" if "pad" in attrs else ""), "op"
    return op_type.lower(), "op"


def picture(graph: ir.Graph, title: str | None = None, source: str = "") -> Picture:
    """The boxes and shortcut arcs of `graph`'s main path."""
    entries = _main_path(graph)
    layer_by_name = {layer.name: layer for layer in graph.layers}
    boxes: list[dict] = []
    box_of_entry: list[int] = []  # entry index -> box index covering it (-1: none yet)
    pending: list[str] = []  # hidden layers seen before the first box
    improved = _improved(graph)
    blob = graph.inputs[0]
    boxes.append({"label": "image" if len(blob.shape) == 4 and blob.shape[1] == 3 else "input",
                  "kind": "input", "stage": "", "size": _size(blob.shape),
                  "layers": [], "unit": None, "key": ""})
    for entry in entries:
        op = entry.op
        if entry.shortcut is not None:  # the join belongs to its arc, not to a box
            box_of_entry.append(len(boxes) - 1)
            continue
        if op.type in HIDDEN_OPS:
            if len(boxes) > 1:
                boxes[-1]["layers"].extend(op.layers)
            else:
                pending.extend(op.layers)
            box_of_entry.append(len(boxes) - 1)
            continue
        label, kind = box_label(op.type, op.attrs)
        if improved and op.type == "FC" and _between_bns(entries, entry):
            label = f"BN, {label}, BN"  # the embedding head, as the ArcFace paper writes it
        first = layer_by_name[op.layers[0]]
        last = layer_by_name[op.layers[-1]]
        if op.type == "Slice" and op.attrs["axis"] == 1 and first.top_shapes:
            # on the main path only a Res2Net block splits its channels (S splits of W)
            label = f"Res2Net split, {len(first.tops)} x {first.top_shapes[0][1]}"
        boxes.append({"label": label, "kind": kind, "stage": first.stage,
                      "size": _size(last.top_shapes[0]) if last.top_shapes else "",
                      "layers": pending + list(op.layers), "unit": None,
                      "key": op.layers[0]})
        pending = []
        box_of_entry.append(len(boxes) - 1)

    position = {entry.op.id: k for k, entry in enumerate(entries)}
    arcs: list[Arc] = []
    for k, entry in enumerate(entries):
        shortcut = entry.shortcut
        if shortcut is None:
            continue
        own = {op.id for op in shortcut.ops}
        if shortcut.ops:
            forks = [i for op in shortcut.ops for i in op.inputs if i not in own]
        else:
            main_last = entries[k - 1].op.id if k else None
            forks = [i for i in entry.op.inputs if i != main_last]
        fork_at = position.get(forks[0], -1) if forks else -1
        first = box_of_entry[fork_at] + 1 if fork_at >= 0 else 1
        last = box_of_entry[k - 1] if k else 0
        if last < first:
            continue  # a shortcut around no box: nothing to draw beside
        for b in range(first, last + 1):
            boxes[b]["unit"] = ("block", len(arcs))
        arcs.append(Arc(first, last, shortcut.kind, shortcut.describe(),
                        tuple(entry.op.layers) + tuple(n for op in shortcut.ops for n in op.layers)))
    if not arcs:  # a plain net: its blocks by the builder's names
        for b in boxes:
            mark = _PLAIN_BLOCK.match(b["layers"][0]) if b["layers"] else None
            if mark:
                b["unit"] = ("plain", mark.group(1))
    units, previous = [], object()
    for b in boxes:
        key = b["unit"] if b["unit"] is not None else ("box", len(units))
        if key != previous:
            units.append(key)
            previous = key
        b["unit"] = len(units) - 1
    totals = count(graph)
    depth = sum(1 for e in entries if e.op.type in WEIGHTED_OPS and e.shortcut is None)
    return Picture(title or graph.name, source,
                   tuple(Box(b["label"], b["kind"], b["stage"], b["size"], tuple(b["layers"]),
                             b["unit"], b["key"]) for b in boxes),
                   tuple(arcs), depth, totals.params, totals.macs,
                   _preactivated(graph) and not improved, improved)


def _between_bns(entries: list[Entry], entry: Entry) -> bool:
    """An fc with a BatchNorm right before and right after it (IResNet's embedding)."""
    k = entries.index(entry)
    return (0 < k < len(entries) - 1 and entries[k - 1].op.type == "BN"
            and entries[k + 1].op.type == "BN")


# --------------------------------------------------------------------------- coordinates


@dataclass(frozen=True)
class PlacedBox:
    x: float
    y: float
    label: str
    kind: str
    fill: str
    state: str  # "", "changed", "only"
    title: str  # hover text: the layers it stands for


@dataclass(frozen=True)
class PlacedArc:
    path: str
    kind: str
    state: str
    title: str
    mark: tuple[float, float] | None  # where "0-pad" is written, for a zero-pad shortcut


@dataclass(frozen=True)
class SideLabel:
    x: float
    y: float
    text: str
    kind: str  # "stage", "size", "repeat"
    anchor: str


@dataclass(frozen=True)
class Column:
    x: float
    width: float
    height: float
    title: str
    source: str
    caption: tuple[str, ...]
    boxes: tuple[PlacedBox, ...]
    arrows: tuple[tuple[float, float, float], ...]  # (x, y from, y to)
    arcs: tuple[PlacedArc, ...]
    labels: tuple[SideLabel, ...]
    brackets: tuple[str, ...]  # path data of repeat brackets
    mode: str  # "full" or "blocks"
    caption_y: float
    box_x_offset: float = LEFT


# A fill per stage, in order of appearance, so that the stages read at a glance.
STAGE_FILLS = ("#f3d9b1", "#cfe3f7", "#d3efd0", "#f6d2dc", "#e4dbf5", "#fbefc4", "#d6eff0")
HEAD_FILL = "#e9ecef"
INPUT_FILL = "#ffffff"


def _fmt(value: float) -> str:
    """Coordinates with at most one decimal, no trailing zeros: byte-stable output."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def default_blocks(pic: Picture) -> bool:
    """--blocks unless asked otherwise: above 50 weighted layers a full column stops reading."""
    return pic.depth > BLOCKS_ABOVE


def _runs(pic: Picture, blocks: bool, states: list[str]) -> list[tuple[list[int], int]]:
    """(box indices drawn, repeat count) per run: with `blocks`, consecutive identical units
    (same labels, sizes, shortcut kind and highlight) are drawn once."""
    by_unit: dict[int, list[int]] = {}
    for i, b in enumerate(pic.boxes):
        by_unit.setdefault(b.unit, []).append(i)
    arc_of_box = {}
    for a in pic.arcs:
        arc_of_box[a.first] = a
    runs: list[tuple[list[int], int]] = []
    previous = None
    for unit in sorted(by_unit):
        members = by_unit[unit]
        arc = arc_of_box.get(members[0])
        signature = (tuple((pic.boxes[i].label, pic.boxes[i].size, pic.boxes[i].stage, states[i])
                           for i in members),
                     (arc.kind, arc.text) if arc is not None and arc.last == members[-1] else None)
        if blocks and previous == signature and pic.boxes[members[0]].kind != "input":
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((members, 1))
        previous = signature
    return runs


def place(pic: Picture, x: float, blocks: bool, highlight: dict[str, str] | None = None,
          top: float = TOP, rows: dict[int, int] | None = None) -> Column:
    """Coordinates of one column whose left edge is `x`. `rows` (box index -> row, full
    drawings only) puts boxes on given rows, so that two aligned columns line up."""
    highlight = highlight or {}

    def state_of(layers: tuple[str, ...]) -> str:
        found = {highlight[n] for n in layers if n in highlight}
        return "only" if "only" in found else "changed" if found else ""

    states = [state_of(b.layers) for b in pic.boxes]
    runs = _runs(pic, blocks, states)
    box_x = x + LEFT
    cx = box_x + BOX_W / 2
    y = top
    fills: dict[str, str] = {}
    placed: list[PlacedBox] = []
    row_of: dict[int, float] = {}  # box index -> its top y, for drawn boxes
    labels: list[SideLabel] = []
    brackets: list[str] = []
    last_stage, last_size = None, None
    for members, repeat in runs:
        run_top = y
        for i in members:
            b = pic.boxes[i]
            if rows is not None and not blocks:
                y = top + rows[i] * (BOX_H + GAP)
            if b.kind == "input":
                fill = INPUT_FILL
            elif b.stage == "head":
                fill = HEAD_FILL
            else:
                fill = fills.setdefault(b.stage, STAGE_FILLS[len(fills) % len(STAGE_FILLS)])
            title = ", ".join(b.layers) if b.layers else b.label
            placed.append(PlacedBox(box_x, y, b.label, b.kind, fill, states[i], title))
            row_of[i] = y
            mid = y + BOX_H / 2 + 4
            if b.stage and b.stage != last_stage and b.stage != "head":
                labels.append(SideLabel(x + 6, mid - 7, b.stage, "stage", "start"))
                if b.size:
                    labels.append(SideLabel(x + 6, mid + 7, b.size, "size", "start"))
                    last_size = b.size
            elif b.size and b.size != last_size:
                labels.append(SideLabel(x + 6, mid, b.size, "size", "start"))
                last_size = b.size
            last_stage = b.stage or last_stage
            y += BOX_H + GAP
        if repeat > 1:
            bottom = y - GAP
            bx = box_x - 8
            brackets.append(f"M{_fmt(bx)} {_fmt(run_top)} H{_fmt(bx - 6)} V{_fmt(bottom)} "
                            f"H{_fmt(bx)}")
            labels.append(SideLabel(bx - 10, (run_top + bottom) / 2 + 4, f"\u00d7{repeat}",
                                    "repeat", "end"))
    arrows = []
    for upper, lower in zip(placed, placed[1:]):
        arrows.append((cx, upper.y + BOX_H, lower.y))
    arcs = []
    right = box_x + BOX_W
    for a in pic.arcs:
        if a.first not in row_of or a.last not in row_of:
            continue
        y0 = row_of[a.first] - GAP / 2
        y1 = row_of[a.last] + BOX_H + GAP / 2
        path = (f"M{_fmt(cx)} {_fmt(y0)} H{_fmt(right)} C{_fmt(right + ARC_BULGE)} {_fmt(y0)} "
                f"{_fmt(right + ARC_BULGE)} {_fmt(y1)} {_fmt(right)} {_fmt(y1)} H{_fmt(cx + 7)}")
        marked = a.kind in ("zero-pad", "pooled-projection")  # "0-pad", "avg" (ResNet-D)
        mark = (right + ARC_BULGE * 0.75 + 4, (y0 + y1) / 2 + 3) if marked else None
        arcs.append(PlacedArc(path, a.kind, state_of(a.layers), a.text, mark))
    caption = (f"{pic.depth} layers",
               f"{pic.params:,} parameters",
               f"{pic.macs:,} multiply-adds")
    caption_y = y - GAP + 28
    height = caption_y + CAPTION - 16
    return Column(x, LEFT + BOX_W + RIGHT, height, pic.title, pic.source, caption,
                  tuple(placed), tuple(arrows), tuple(arcs), tuple(labels), tuple(brackets),
                  "blocks" if blocks else "full", caption_y)


def aligned_rows(a: Picture, b: Picture,
                 pairs: list[tuple[str, str]]) -> tuple[dict[int, int], dict[int, int]]:
    """Rows for two columns drawn side by side: boxes an alignment pairs (by the first layer
    of their ops) share a row; the boxes between two pairs sit side by side, the shorter run
    leaving empty rows."""
    index_a = {box.key: i for i, box in enumerate(a.boxes) if box.key}
    index_b = {box.key: i for i, box in enumerate(b.boxes) if box.key}
    matched, last = [(0, 0)], (0, 0)  # the inputs pair up
    for key_a, key_b in pairs:
        i, j = index_a.get(key_a), index_b.get(key_b)
        if i is not None and j is not None and i > last[0] and j > last[1]:
            matched.append((i, j))
            last = (i, j)
    matched.append((len(a.boxes), len(b.boxes)))  # a sentinel after the last boxes
    rows_a: dict[int, int] = {}
    rows_b: dict[int, int] = {}
    row, ia, ib = 0, 0, 0
    for i, j in matched:
        gap = max(i - ia, j - ib)
        for k in range(ia, i):
            rows_a[k] = row + k - ia
        for k in range(ib, j):
            rows_b[k] = row + k - ib
        row += gap
        if i < len(a.boxes):
            rows_a[i] = rows_b[j] = row
            row += 1
        ia, ib = i + 1, j + 1
    return rows_a, rows_b


def fmt(value: float) -> str:
    """The coordinate format every template uses."""
    return _fmt(value)


@dataclass(frozen=True)
class Page:
    title: str
    width: float
    height: float
    columns: tuple[Column, ...]
    legend_y: float
    notes: tuple[str, ...]


LEGEND_H = 66
NOTE_H = 16
MARGIN = 16


def page(pictures: list[Picture], blocks: bool | None = None,
         highlights: list[dict[str, str]] | None = None, title: str = "",
         rows: list[dict[int, int] | None] | None = None) -> Page:
    """Columns side by side, left to right, and the legend under the tallest.

    `blocks`: True or False for every column; None decides per column (default_blocks).
    `rows`: per column, the row of each box (see aligned_rows), or None."""
    highlights = highlights or [{} for _ in pictures]
    rows = rows or [None for _ in pictures]
    columns, x = [], MARGIN
    for pic, marks, row in zip(pictures, highlights, rows):
        column = place(pic, x, default_blocks(pic) if blocks is None else blocks, marks,
                       rows=row)
        columns.append(column)
        x += column.width + COLUMN_GAP
    notes = []
    if not all(p.preact or p.improved for p in pictures):
        notes += ["BatchNorm, Scale and ReLU follow every conv (at a shortcut,",
                  "the ReLU follows the addition); softmax follows the fc."]
    if any(p.preact for p in pictures):
        notes += ["Pre-activation: BatchNorm, Scale and ReLU precede every conv, nothing",
                  "follows the addition, a last BN-ReLU precedes the pool."]
    if any(p.improved for p in pictures):
        notes += ["IResNet (ArcFace): BN opens each block and follows every conv,",
                  "PReLU between a block's convs, nothing follows the addition;",
                  "BN, fc 512, BN is the embedding."]
    if any(c.mode == "blocks" for c in columns):
        notes.append("\u00d7n: the block beside the bracket repeats n times.")
    legend_y = max(c.height for c in columns) + 14
    width = max(x - COLUMN_GAP + MARGIN, 420)
    height = legend_y + LEGEND_H + NOTE_H * (len(notes) - 1) + 8
    return Page(title or " | ".join(p.title for p in pictures), width, height, tuple(columns),
                legend_y, tuple(notes))
