"""`netgen draw`: networks as the paper draws them (Figure 3's columns, Figure 5's blocks).

The layout is netgen's own (netgen.jobs.draw.layout), the SVG comes from the jinja2 templates
under templates/draw/, so no Graphviz or other program is needed. PNG goes through the
optional `png` extra (resvg-py, a self-contained wheel): an SVG drawing needs nothing more.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from pathlib import Path

import jinja2

from netgen.arch import ir
from netgen.errors import NetgenError
from netgen.jobs.draw import layout
from netgen.jobs.draw.layout import aligned_rows, default_blocks, page, picture
from netgen.storage.atomic import check_writable_file, write_atomic

FORMATS = (".svg", ".png")
PNG_HINT = "pip install 'netgen[png]'"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """Built once per process; autoescaped, since labels and file names end up in XML."""
    folder = importlib.resources.files("netgen.templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=True)
    env.filters["f"] = layout.fmt
    env.globals.update(W=layout.BOX_W, H=layout.BOX_H)
    return env


def render_template(name: str, **context: object) -> str:
    """A template under templates/ (draw/*.j2) rendered with the drawing filters."""
    return _environment().get_template(name).render(**context)


def render_page(page: layout.Page, prefix: str = "ng", inline: bool = False) -> str:
    """The SVG text of a page. `prefix` keeps marker ids apart when several drawings share
    one HTML document; `inline` drops the xmlns (HTML puts <svg> in its namespace itself),
    so that a report holds no URL at all."""
    return render_template("draw/page.svg.j2", page=page, prefix=prefix, inline=inline)


def graph_svg(graph: ir.Graph, title: str | None = None, blocks: bool | None = None) -> str:
    """One network's drawing: what a build writes as net.svg."""
    return render_page(layout.page([layout.picture(graph, title)], blocks))


def pictures(args: list[str], input_shape: tuple[int, ...] | None = None
             ) -> list[layout.Picture]:
    """Each argument in any of netgen.jobs.network's four forms: a network name, a build
    folder, a prototxt or an ONNX file."""
    from netgen.jobs.network import load_network

    out = []
    for arg in args:
        side = load_network(arg, input_shape=input_shape)
        title = side.graph.name if side.kind == "spec" else (side.graph.name or Path(arg).stem)
        out.append(layout.picture(side.graph, title, "" if side.kind == "spec" else arg))
    return out


def draw(args: list[str], blocks: bool | None = None,
         input_shape: tuple[int, ...] | None = None) -> str:
    """The SVG of `args` side by side; `blocks` None: per network, --blocks above 50 layers;
    `input_shape` for a train_val whose data layer does not tell its size."""
    if not args:
        raise NetgenError("give at least one network: a name like resnet34-B, a build folder, "
                          "a prototxt or an ONNX file")
    return render_page(layout.page(pictures(args, input_shape), blocks))


def block_svg(kind: str, stride_in: str = "1x1") -> str:
    """Figure 5: the block of conv2_x as the paper draws it (with its widths) and, beside it,
    the first block of conv3_x, where the /2 sits on the 1x1 or the 3x3 (`stride_in`)."""
    from netgen.jobs.draw.block import BOX_H, BOX_W, block_page

    return render_template("draw/block.svg.j2", page=block_page(kind, stride_in), prefix="ng",
                           bw=BOX_W, bh=BOX_H)


def check_output(out: str | os.PathLike) -> Path:
    """Where to write, checked before any work: .svg, or .png with the extra installed."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NetgenError(f"-o {out}: unknown picture format {path.suffix or '(none)'!r}; "
                          "allowed: .svg, .png")
    if suffix == ".png":
        _rasterizer()
    return check_writable_file(out, "-o", f"net{suffix}")


def _rasterizer():
    try:
        import resvg_py
    except ImportError:
        raise NetgenError(f"PNG output needs the optional png extra: {PNG_HINT} "
                          "(or write .svg)") from None
    return resvg_py


def write_picture(svg: str, out: str | os.PathLike) -> int:
    """Write `svg` to `out` (.svg as is, .png rasterised), atomically. Returns the bytes written."""
    path = check_output(out)
    if path.suffix.lower() == ".png":
        try:
            payload = bytes(_rasterizer().svg_to_bytes(svg_string=svg, background="#ffffff"))
        except ValueError as exc:
            raise NetgenError(f"cannot render {out} as PNG: {exc}") from None
    else:
        payload = svg.encode()
    write_atomic(path, payload)
    return len(payload)


# The paper's figures as generated/ carries them (the README shows them).
FIGURE3 = ("plain34", "resnet34-A", "resnet34-B", "resnet34-C")


def paper_figures() -> dict[str, str]:
    """File name -> SVG: Figure 3's columns (plain-34 and ResNet-34 with each shortcut
    option) and Figure 5's bottleneck block."""
    return {"fig3.svg": draw(list(FIGURE3)), "fig5.svg": block_svg("bottleneck")}
