"""`netgen draw`: the drawings parsed back as XML and checked against the paper.

Labels, shortcut styles, stage sizes, repeat counts and the figures under each column are
read out of the SVG itself, so a template slip shows up here and not in a reader's eyes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import onnx
import pytest

from netgen.arch.builder import build
from netgen.arch.spec import make_spec, spec_from_name
from netgen.jobs import draw as drawing
from netgen.jobs.build import write_build
from torch_style import torch_resnet

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def find(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in _classes(e)]


def columns(root: ET.Element) -> list[ET.Element]:
    return find(root, "g", "network")


def box_labels(column: ET.Element, kind: str | None = None) -> list[str]:
    out = []
    for box in find(column, "g", "box"):
        if kind is None or kind in _classes(box):
            out.append("".join(box.find(f"{SVG}text").itertext()))
    return out


def texts(column: ET.Element, cls: str) -> list[str]:
    return ["".join(t.itertext()) for t in find(column, "text", cls)]


def shortcuts(column: ET.Element) -> list[ET.Element]:
    return find(column, "path", "shortcut")


def dotted(column: ET.Element) -> int:
    return sum(1 for p in shortcuts(column) if p.get("stroke-dasharray"))


def one(name: str, **options) -> ET.Element:
    (column,) = columns(parse(drawing.draw([name], **options)))
    return column


# --------------------------------------------------------------------------- Figure 3


def test_resnet34_boxes_say_what_the_paper_says():
    column = one("resnet34-B")
    labels = box_labels(column)
    assert labels[:4] == ["image", "7x7 conv, 64, /2", "pool, /2", "3x3 conv, 64"]
    assert labels[-2:] == ["avg pool", "fc 1000"]
    convs = box_labels(column, "conv")
    # conv1 + 3x3 convs per stage (3, 4, 6, 3 blocks of two): 33, the first of each stage /2
    assert len(convs) == 33
    assert [c for c in convs if c.endswith("/2")] == [
        "7x7 conv, 64, /2", "3x3 conv, 128, /2", "3x3 conv, 256, /2", "3x3 conv, 512, /2"]
    assert convs.count("3x3 conv, 64") == 6 and convs.count("3x3 conv, 256") == 11
    # BatchNorm, Scale and ReLU are not boxes: the legend says they follow every conv
    assert not [l for l in labels if "bn" in l.lower() or "relu" in l.lower() or "scale" in l]


def test_bottleneck_labels():
    convs = box_labels(one("resnet50-B"), "conv")
    assert len(convs) == 49
    assert convs[1:4] == ["1x1 conv, 64", "3x3 conv, 64", "1x1 conv, 256"]
    assert "1x1 conv, 128, /2" in convs and "3x3 conv, 128, /2" not in convs
    torch_style = box_labels(one("resnet50-B-stride3x3"), "conv")
    assert "3x3 conv, 128, /2" in torch_style and "1x1 conv, 128, /2" not in torch_style


@pytest.mark.parametrize("name, dotted_count, solid, zero_pad", [
    ("resnet34-A", 0, 16, 3),   # identity everywhere, zero-padding where the width doubles
    ("resnet34-B", 3, 13, 0),   # projections only where the shape changes
    ("resnet34-C", 16, 0, 0),   # every shortcut a projection
    ("plain34", 0, 0, 0),
])
def test_shortcut_styles(name, dotted_count, solid, zero_pad):
    column = one(name)
    paths = shortcuts(column)
    assert dotted(column) == dotted_count
    assert len(paths) - dotted_count == solid
    assert len(find(column, "text", "zero-pad-mark")) == zero_pad
    kinds = [p.get("class").split()[1] for p in paths]
    assert kinds.count("projection") == dotted_count
    assert kinds.count("zero-pad") == zero_pad


def test_zero_pad_marks_sit_where_the_width_doubles():
    column = one("resnet34-A")
    marks = [float(t.get("y")) for t in find(column, "text", "zero-pad-mark")]
    halving = {label: float(box.find(f"{SVG}rect").get("y")) for box in find(column, "g", "box")
               for label in box_labels(box) if label.endswith(", /2") and "3x3" in label}
    assert len(marks) == len(halving) == 3
    # each mark lies beside the block whose first conv halves the size
    for mark, top in zip(sorted(marks), sorted(halving.values())):
        assert top < mark < top + 2 * 40


def test_stage_labels_and_output_sizes():
    column = one("resnet34-B")
    assert texts(column, "stage") == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
    sizes = texts(column, "size")
    assert sizes == ["224x224", "112x112", "56x56", "56x56", "28x28", "14x14", "7x7", "1x1"]
    cifar = one("cifar10-resnet20-A")
    assert texts(cifar, "stage") == ["conv1", "conv2_x", "conv3_x", "conv4_x"]
    assert texts(cifar, "size") == ["32x32", "32x32", "32x32", "16x16", "8x8", "1x1"]


def _summary(name: str) -> dict:
    from netgen.jobs.build import summary

    spec = spec_from_name(name)
    return summary(spec, build(spec))


@pytest.mark.parametrize("name, depth, params", [
    # torchvision's published parameter counts of resnet34 and resnet152 (option B)
    ("resnet34-B", 34, 21_797_672), ("resnet152-B", 152, 60_192_808),
    ("cifar10-resnet1202-A", 1202, None), ("plain34", 34, None)])
def test_caption_holds_the_summary_figures(name, depth, params):
    column = one(name)
    info = _summary(name)
    assert texts(column, "caption-name") == [name]
    assert texts(column, "caption-line") == [f"{depth} layers", f"{info['parameters']:,} parameters",
                                             f"{info['multiply_adds']:,} multiply-adds"]
    if params is not None:
        assert info["parameters"] == params


# --------------------------------------------------------------------------- deep networks


def test_blocks_is_the_default_above_50_layers():
    assert one("resnet50-B").get("data-mode") == "full"
    assert one("resnet101-B").get("data-mode") == "blocks"
    assert one("cifar10-resnet44-A").get("data-mode") == "full"
    assert one("cifar10-resnet56-A").get("data-mode") == "blocks"
    assert one("resnet34-B", blocks=True).get("data-mode") == "blocks"


def test_repeat_counts_resnet152():
    column = one("resnet152-B")
    # conv2_x..conv5_x have 3, 8, 36, 3 blocks: the first of each drawn alone (it projects)
    assert texts(column, "repeat") == ["\u00d72", "\u00d77", "\u00d735", "\u00d72"]
    assert len(find(column, "path", "repeat-bracket")) == 4
    assert len(box_labels(column, "conv")) == 1 + 4 * 2 * 3
    assert dotted(column) == 4 and len(shortcuts(column)) == 8
    full = one("resnet152-B", blocks=False)
    assert texts(full, "repeat") == []
    assert len(box_labels(full, "conv")) == 151 and len(shortcuts(full)) == 50
    assert dotted(full) == 4


def test_cifar_1202_fits_a_page():
    root = parse(drawing.draw(["cifar10-resnet1202-A"]))
    assert float(root.get("height")) <= 6000
    (column,) = columns(root)
    # 200 blocks a stage; the first of conv3_x and conv4_x zero-pads and is drawn alone
    assert texts(column, "repeat") == ["\u00d7200", "\u00d7199", "\u00d7199"]
    assert len(find(column, "text", "zero-pad-mark")) == 2
    assert texts(column, "caption-line")[0] == "1202 layers"


def test_plain_nets_repeat_by_block():
    column = one("cifar10-plain110")
    assert texts(column, "repeat") == ["\u00d718", "\u00d717", "\u00d717"]
    assert shortcuts(column) == []


def test_deterministic_across_processes():
    code = ("import sys, hashlib; from netgen.jobs.draw import draw; "
            "print(hashlib.sha256(draw(['resnet34-A', 'resnet152-C', 'plain18']).encode())"
            ".hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "777")}
    assert len(digests) == 1


# --------------------------------------------------------------------------- any source


def _shape_of(column: ET.Element) -> tuple:
    """What a drawing says about the network, without its title or source line."""
    return (box_labels(column), [p.get("class") for p in shortcuts(column)],
            texts(column, "stage"), texts(column, "size"), texts(column, "caption-line"))


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_build_folder_prototxt_and_onnx_draw_like_the_name(tmp_path, shortcut):
    out = tmp_path / "r20"
    spec = make_spec("cifar10", 20, shortcut)
    write_build(spec, out, onnx=True)
    by_name = one(spec.name)
    # option A's subsample is recognised in the files too (fixed weights of 1): 0-pad marks
    assert len(find(by_name, "text", "zero-pad-mark")) == (2 if shortcut == "A" else 0)
    assert dotted(by_name) == (0 if shortcut == "A" else 2)
    for arg in (out, out / "deploy.prototxt", out / "model.onnx"):
        assert _shape_of(one(str(arg))) == _shape_of(by_name), arg
    # the build's own net.svg is the same drawing
    net = parse((out / "net.svg").read_text())
    assert _shape_of(columns(net)[0]) == _shape_of(by_name)


def test_torchvision_style_onnx(tmp_path):
    path = tmp_path / "resnet18.onnx"
    onnx.save(torch_resnet(18), str(path))
    column = one(str(path))
    assert texts(column, "network-source") == [str(path)]
    convs = box_labels(column, "conv")
    assert len(convs) == 17 and convs[0] == "7x7 conv, 64, /2"
    assert "3x3 conv, 128, /2" in convs
    assert dotted(column) == 3 and len(shortcuts(column)) == 8  # downsample = projection
    assert texts(column, "stage") == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
    assert box_labels(column)[-1] == "fc 1000"


def test_names_are_escaped(tmp_path):
    weird = tmp_path / "a&b <net>"
    write_build(make_spec("cifar10", 8, "A"), weird, onnx=False)
    (column,) = columns(parse(drawing.draw([str(weird)])))  # parses: & and < escaped
    assert texts(column, "network-source") == [str(weird)]


def test_columns_side_by_side():
    root = parse(drawing.draw(list(drawing.FIGURE3)))
    cols = columns(root)
    assert [c.get("data-name") for c in cols] == list(drawing.FIGURE3)
    xs = [float(find(c, "g", "box")[1].find(f"{SVG}rect").get("x")) for c in cols]
    assert xs == sorted(xs) and len(set(xs)) == 4
    # plain-34 and ResNet-34 have the same boxes, as in Figure 3
    assert len({tuple(box_labels(c)) for c in cols}) == 1


def test_every_generated_folder_carries_its_drawing():
    folders = sorted(p for p in (ROOT / "generated").iterdir() if p.is_dir())
    assert len(folders) == 28
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        (column,) = columns(parse((folder / "net.svg").read_text()))
        assert column.get("data-name") == folder.name == summary["name"]
        lines = texts(column, "caption-line")
        assert lines[1:] == [f"{summary['parameters']:,} parameters",
                             f"{summary['multiply_adds']:,} multiply-adds"], folder.name
        assert lines[0] == f"{summary['spec']['depth']} layers", folder.name
        plain = summary["spec"]["plain"]
        assert (shortcuts(column) == []) == plain, folder.name


def test_generated_figures_are_current():
    figures = drawing.paper_figures()
    for file_name, svg in figures.items():
        assert (ROOT / "generated" / file_name).read_text() == svg, "run make generate"
    assert len(columns(parse(figures["fig3.svg"]))) == 4


# --------------------------------------------------------------------------- Figure 5


def _block_texts(svg: str, cls: str) -> list[str]:
    return ["".join(t.itertext()) for t in find(parse(svg), "text", cls)]


def test_block_view_basic():
    svg = drawing.block_svg("basic")
    boxes = _block_texts(svg, "label")
    assert boxes == ["3x3, 64", "3x3, 64", "3x3, 128, /2", "3x3, 128"]
    assert _block_texts(svg, "width") == ["64-d, 56x56", "64-d, 56x56", "64-d, 56x56",
                                          "128-d, 28x28"]
    assert _block_texts(svg, "shortcut-label") == ["identity", "1x1, 128, /2"]
    assert len(_block_texts(svg, "relu")) == 2 + 2


@pytest.mark.parametrize("stride_in, first, middle", [
    ("1x1", "1x1, 128, /2", "3x3, 128"), ("3x3", "1x1, 128", "3x3, 128, /2")])
def test_block_view_bottleneck_and_stride_placement(stride_in, first, middle):
    svg = drawing.block_svg("bottleneck", stride_in)
    boxes = _block_texts(svg, "label")
    assert boxes == ["1x1, 64", "3x3, 64", "1x1, 256", first, middle, "1x1, 512"]
    assert _block_texts(svg, "width") == ["256-d, 56x56", "256-d, 56x56", "256-d, 56x56",
                                          "512-d, 28x28"]
    root = parse(svg)
    assert [p.get("stroke-dasharray") for p in find(root, "path", "shortcut")] == [None, "4 3"]


# --------------------------------------------------------------------------- the command


def test_cli_writes_svg(run_cli, tmp_path):
    out = tmp_path / "fig3.svg"
    result = run_cli("draw", "plain34", "resnet34-A", "resnet34-B", "resnet34-C", "-o", out)
    assert result.code == 0, result.err
    assert out.read_text() == drawing.draw(list(drawing.FIGURE3))
    assert f"wrote {out}" in result.out
    result = run_cli("draw", "resnet152-B", "--full", "-o", out)
    assert result.code == 0 and columns(parse(out.read_text()))[0].get("data-mode") == "full"
    result = run_cli("draw", "resnet18-B", "--blocks", "-o", out)
    assert result.code == 0 and columns(parse(out.read_text()))[0].get("data-mode") == "blocks"
    result = run_cli("draw", "--block", "bottleneck", "--stride-in", "3x3", "-o", out)
    assert result.code == 0 and out.read_text() == drawing.block_svg("bottleneck", "3x3")


@pytest.mark.parametrize("args, message", [
    (["resnet34-B", "-o", "{tmp}/x.gif"], "unknown picture format '.gif'; allowed: .svg, .png"),
    (["resnet35-B", "-o", "{tmp}/x.svg"], "ImageNet depth 35 is not in Table 1"),
    (["no/such.onnx", "-o", "{tmp}/x.svg"], "no such file"),
    (["-o", "{tmp}/x.svg"], "give at least one network"),
    (["resnet34-B", "--block", "basic", "-o", "{tmp}/x.svg"], "drop the network arguments"),
    (["--block", "basic", "--stride-in", "3x3", "-o", "{tmp}/x.svg"], "bottleneck blocks only"),
    (["resnet50-B", "--stride-in", "3x3", "-o", "{tmp}/x.svg"], "goes with --block"),
    (["resnet34-B", "-o", "{tmp}/missing/x.svg"], "no such folder"),
])
def test_cli_errors(run_cli, tmp_path, args, message):
    result = run_cli("draw", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.code == 2
    assert message in result.err and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_png_without_the_extra_says_how_to_get_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # import fails as if not installed
    result = run_cli("draw", "resnet18-B", "-o", tmp_path / "net.png")
    assert result.code == 2
    assert "pip install 'netgen[png]'" in result.err and result.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_png_with_the_extra(run_cli, tmp_path):
    pytest.importorskip("resvg_py", reason="the png extra (resvg-py) is not installed")
    out = tmp_path / "net.png"
    result = run_cli("draw", "resnet18-B", "-o", out)
    assert result.code == 0, result.err
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert non_white_fraction(data) > 0.01


# --------------------------------------------------------------------------- pixels


def non_white_fraction(png: bytes) -> float:
    """Share of pixels that are not white, decoded with OpenCV (the test extra has it)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.size
    return float(np.mean(np.any(image < 200, axis=2)))


CHROMIUM = Path("/usr/bin/chromium")


def screenshot(target: Path, tmp_path: Path, width: int, height: int) -> bytes:
    """A headless Chromium screenshot of a local file: no network, no profile left behind."""
    shot = tmp_path / f"{target.stem}.png"
    profile = tmp_path / f"profile-{target.stem}"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={shot}", target.as_uri()],
                   capture_output=True, timeout=120, check=True)
    return shot.read_bytes()


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="headless Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_drawing(tmp_path):
    svg = tmp_path / "fig3.svg"
    svg.write_text(drawing.draw(["plain34", "resnet34-B"]))
    fraction = non_white_fraction(screenshot(svg, tmp_path, 800, 1200))
    assert 0.02 < fraction < 0.6, fraction


# --------------------------------------------------------------------------- diff --html


def html_drawings(html: str) -> list[ET.Element]:
    """The inline SVGs of a report, parsed (HTML puts them in the SVG namespace itself)."""
    import re

    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    return [parse(s.replace("<svg", f'<svg xmlns="{SVG[1:-1]}"', 1)) for s in found]


def states(root: ET.Element, tag: str, cls: str, state: str) -> list[ET.Element]:
    return [e for e in find(root, tag, cls) if state in _classes(e)]


def test_html_report_is_self_contained(run_cli, tmp_path):
    out = tmp_path / "report.html"
    result = run_cli("diff", "resnet34-A", "resnet34-B", "--html", out)
    assert result.code == 1, result.err
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for external in ("http:", "https:", "src=", "<script", "<link", "@import", "xlink:href"):
        assert external not in html, external
    assert html.count("url(") == html.count("url(#")  # markers in the document only
    a, b = html_drawings(html)
    assert [c.get("data-name") for c in columns(a) + columns(b)] == ["resnet34-A", "resnet34-B"]
    # the three blocks where A zero-pads and B projects, on both drawings; nothing else
    assert [p.get("class") for p in states(a, "path", "shortcut", "changed")] == \
        ["shortcut zero-pad changed"] * 3
    assert [p.get("class") for p in states(b, "path", "shortcut", "changed")] == \
        ["shortcut projection changed"] * 3
    assert not states(a, "g", "box", "changed") and not states(b, "g", "box", "changed")
    # the text report below the drawings, escaped
    from netgen.jobs.diff import diff, format_text

    import html as html_module
    assert html_module.escape(format_text(diff("resnet34-A", "resnet34-B")), quote=False) in html
    assert "3 shortcut difference(s)" in html
    # marker ids of the two drawings do not collide
    import re
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) == 6


def test_html_marks_layers_and_one_sided_shortcuts(run_cli, tmp_path):
    out = tmp_path / "r.html"
    assert run_cli("diff", "resnet50-B", "resnet50-B-noconv1bias", "--strict", "--html", out).code == 1
    a, b = html_drawings(out.read_text())
    for side in (a, b):
        (changed,) = states(side, "g", "box", "changed")
        assert box_labels(changed) == ["7x7 conv, 64, /2"]
    assert run_cli("diff", "plain18", "resnet18-B", "--html", out).code == 1
    a, b = html_drawings(out.read_text())
    assert shortcuts(columns(a)[0]) == []
    assert len(states(b, "path", "shortcut", "only")) == 8


def test_html_rows_follow_the_alignment(run_cli, tmp_path):
    out = tmp_path / "r.html"
    assert run_cli("diff", "resnet34-B", "resnet50-B", "--html", out).code == 1
    a, b = html_drawings(out.read_text())

    def tops(root):
        return [(box_labels(g)[0], float(g.find(f"{SVG}rect").get("y")))
                for g in find(root, "g", "box") if "conv" in _classes(g)]

    ta, tb = tops(a), tops(b)
    # A's second 3x3 conv of block 2a pairs with B's 3x3 of the bottleneck: one row
    assert ta[2][0] == "3x3 conv, 64" and tb[2][0] == "3x3 conv, 64" and ta[2][1] == tb[2][1]
    # and B's 1x1 conv, 256 has no partner: A leaves its row empty
    assert tb[3][0] == "1x1 conv, 256" and tb[3][1] not in {y for _, y in ta}


def test_html_same_network(run_cli, tmp_path):
    out = tmp_path / "same.html"
    assert run_cli("diff", "cifar10-resnet20-A", "cifar10-resnet20-A", "--html", out).code == 0
    html = out.read_text()
    assert "EQUIVALENT" in html and len(html_drawings(html)) == 2
    assert " changed" not in html.split("<h2>Report</h2>")[0].replace("aligned, but", "")


def test_html_bad_path(run_cli, tmp_path):
    result = run_cli("diff", "resnet18-A", "resnet18-B", "--html", tmp_path / "no" / "r.html")
    assert result.code == 2 and "no such folder" in result.err and result.out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="headless Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_html_report(run_cli, tmp_path):
    out = tmp_path / "report.html"
    assert run_cli("diff", "resnet18-A", "resnet18-B", "--html", out).code == 1
    png = screenshot(out, tmp_path, 1000, 1400)
    assert 0.02 < non_white_fraction(png) < 0.6


def test_legend_says_where_pre_activation_puts_batchnorm():
    """A pre-activation net's BN-ReLU comes before each conv; the legend must not say after."""
    def legend(name: str) -> str:
        return " ".join(t.text or "" for t in parse(drawing.draw([name])).iter() if t.text)

    pre, post = legend("cifar10-preresnet164"), legend("resnet34-B")
    assert "precede every conv" in pre and "follow every conv" not in pre
    assert "follow every conv" in post and "precede" not in post
