"""Figure 5's view: one residual block with its widths, beside the block that downsamples.

The blocks are taken from a network the builder really builds (ResNet-34 for basic, ResNet-50
for bottleneck, with the chosen stride placement), so the picture cannot disagree with the
files netgen writes: the widths, the /2 and the projection come from the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.jobs.draw import layout

BOX_W = 120
BOX_H = 26
GAP = 30  # room for the "relu" between two boxes
COLUMN_W = 300
TOP = 56


@dataclass(frozen=True)
class BlockBox:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class BlockColumn:
    title: str
    x: float
    cx: float
    input_label: str
    input_y: float
    output_label: str
    output_y: float
    boxes: tuple[BlockBox, ...]
    relus: tuple[tuple[float, float], ...]  # where "relu" is written
    arrows: tuple[tuple[float, float], ...]  # (y from, y to) along the centre line
    join_y: float  # centre of the addition's circle
    shortcut_path: str
    shortcut_kind: str  # "identity" or "projection"
    shortcut_label: str
    shortcut_label_at: tuple[float, float]


@dataclass(frozen=True)
class BlockPage:
    title: str
    width: float
    height: float
    columns: tuple[BlockColumn, ...]
    notes: tuple[str, ...]


def _figure5_label(box: layout.Box) -> str:
    """Figure 5 writes `1x1, 64` where Figure 3 writes `1x1 conv, 64`."""
    return box.label.replace(" conv,", ",", 1)


def _conv_width(layer: ir.Layer) -> tuple[int, int]:
    """(input channels, output channels) of a convolution from its weight shape."""
    p: ir.ConvolutionParam = layer.param
    return layer.blob_shapes[0][1] * p.group, p.num_output


def _column(graph: ir.Graph, pic: layout.Picture, arc: layout.Arc, title: str,
            x: float) -> BlockColumn:
    layers = {layer.name: layer for layer in graph.layers}
    members = pic.boxes[arc.first:arc.last + 1]
    c_in, _ = _conv_width(layers[members[0].layers[0]])
    _, c_out = _conv_width(layers[members[-1].layers[0]])
    size_in = pic.boxes[arc.first - 1].size
    cx = x + COLUMN_W / 2 - 30
    y = TOP + 24
    input_y = TOP
    boxes, relus, arrows = [], [], [(input_y + 6, y)]
    for k, member in enumerate(members):
        boxes.append(BlockBox(cx - BOX_W / 2, y, _figure5_label(member)))
        bottom = y + BOX_H
        if k < len(members) - 1:
            relus.append((cx + 8, bottom + GAP / 2 + 4))
            arrows.append((bottom, bottom + GAP))
            y = bottom + GAP
        else:
            y = bottom
    join_y = y + 22
    arrows.append((y, join_y - 9))
    output_y = join_y + 50
    relus.append((cx + 8, join_y + 27))
    arrows.append((join_y + 9, output_y - 12))
    right = cx + BOX_W / 2 + 36
    top = input_y + 12
    path = (f"M{layout.fmt(cx)} {layout.fmt(top)} H{layout.fmt(right - 12)} "
            f"Q{layout.fmt(right)} {layout.fmt(top)} {layout.fmt(right)} {layout.fmt(top + 12)} "
            f"V{layout.fmt(join_y - 12)} Q{layout.fmt(right)} {layout.fmt(join_y)} "
            f"{layout.fmt(right - 12)} {layout.fmt(join_y)} H{layout.fmt(cx + 10)}")
    if arc.kind == "projection":
        conv = next(layers[n] for n in arc.layers
                    if layers[n].type == "Convolution" and not layers[n].fixed)
        p: ir.ConvolutionParam = conv.param
        label = f"{p.kernel[0]}x{p.kernel[1]}, {p.num_output}"
        label += f", /{p.stride[0]}" if p.stride != (1, 1) else ""
    else:
        label = "identity" if arc.kind == "identity" else arc.kind
    size_out = members[-1].size
    return BlockColumn(title, x, cx, f"{c_in}-d, {size_in}", input_y, f"{c_out}-d, {size_out}",
                       output_y, tuple(boxes), tuple(relus), tuple(arrows), join_y, path,
                       arc.kind, label, (right + 6, (top + join_y) / 2 + 4))


def block_page(kind: str, stride_in: str = "1x1") -> BlockPage:
    """The second block of conv2_x (Figure 5) and the first of conv3_x, of ResNet-34 (basic)
    or ResNet-50 (bottleneck) with option B's projection where the shape changes."""
    spec = make_spec("imagenet", 34 if kind == "basic" else 50, "B", stride_in=stride_in)
    graph = build(spec)
    pic = layout.picture(graph)
    stage_of = {i: b.stage for i, b in enumerate(pic.boxes)}
    identity = next(a for a in pic.arcs if stage_of[a.first] == "conv2_x" and a.kind == "identity")
    down = next(a for a in pic.arcs if stage_of[a.first] == "conv3_x")
    columns = (_column(graph, pic, identity, f"{kind} block (Figure 5)", 16),
               _column(graph, pic, down, "the block that downsamples", 16 + COLUMN_W))
    height = max(c.output_y for c in columns) + 60
    where = {"basic": "the first 3x3", "1x1": "the first 1x1", "3x3": "the 3x3"}[
        "basic" if kind == "basic" else stride_in]
    notes = (f"{spec.name}: BatchNorm and Scale follow every conv; the /2 sits on {where}.",
             "Dotted: projection shortcut (option B) where the shape changes.")
    return BlockPage(f"{kind} block of {spec.name}", 16 + 2 * COLUMN_W + 16, height, columns,
                     notes)
