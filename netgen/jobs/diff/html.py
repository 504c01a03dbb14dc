"""`netgen diff A B --html FILE`: both networks drawn side by side, the differences the
alignment found lit up on the drawings, and the text report below, in one HTML file.

Self-contained on purpose: the SVG is inline, the CSS in a <style>, no script, no font, no
link, so the file opens the same offline, in a mail attachment or a CI artefact years later.
Reads only the diff's result (its difference lists, the two sides' graphs and labels, the
verdict) and `format_text`, so it does not care how the comparison itself is organised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from netgen.errors import NetgenError
from netgen.jobs.draw import (aligned_rows, default_blocks, page, picture, render_page,
                               render_template)
from netgen.storage.atomic import check_writable_file, write_atomic

if TYPE_CHECKING:
    from netgen.jobs.diff import DiffResult

CHANGED, ONLY = "changed", "only"


def highlights(result: DiffResult) -> tuple[dict[str, str], dict[str, str]]:
    """Layer name -> "changed" (aligned with a different op or shortcut) or "only" (present
    on one side only), for side A and side B."""
    marks: tuple[dict[str, str], dict[str, str]] = ({}, {})

    def mark(side: int, names, state: str) -> None:
        for name in names or ():
            if marks[side].get(name) != ONLY:
                marks[side][name] = state

    for d in result.layer_differences:
        mark(0, d["a"], CHANGED)
        mark(1, d["b"], CHANGED)
    for d in result.shortcut_differences:
        a, b = d["a"], d["b"]
        both = a.get("block") is not None and b.get("block") is not None
        for side, one in ((0, a), (1, b)):
            if one.get("block") is not None:
                mark(side, [one["block"]] + list(one.get("ops", [])), CHANGED if both else ONLY)
    for d in result.structural_differences:
        for side, key in ((0, "a"), (1, "b")):
            for entry in d[key]:
                mark(side, entry["layers"], ONLY)
    return marks


def check_target(path: str | os.PathLike) -> Path:
    """Checked before the comparison runs: a bad --html path costs nothing."""
    return check_writable_file(path, "--html", "report.html")


def render_html(result: DiffResult, report: str) -> str:
    """The whole HTML document; `report` is the text report (format_text) shown below."""
    marks = highlights(result)
    sides = (result.a.side, result.b.side)
    pictures = [picture(side.graph, side.graph.name or side.label,
                               "" if side.label == side.graph.name else side.label)
                for side in sides]
    rows: list = [None, None]
    if not any(default_blocks(p) for p in pictures):
        # Full drawings: what the alignment paired sits on one row across the two columns.
        pairs = [(x.op.layers[0], y.op.layers[0]) for x, y in result.pairs
                 if x.op.layers and y.op.layers]
        rows = list(aligned_rows(pictures[0], pictures[1], pairs))
    drawings = []
    for key, side, pic, side_marks, side_rows in zip("ab", sides, pictures, marks, rows):
        drawing = page([pic], None, [side_marks], rows=[side_rows])
        drawings.append({"key": key.upper(), "label": side.label, "kind": side.kind,
                         "svg": Markup(render_page(drawing, prefix=f"diff-{key}", inline=True))})
    found = {"layer": len(result.layer_differences),
             "shortcut": len(result.shortcut_differences),
             "structural": len(result.structural_differences)}
    return render_template("draw/diff.html.j2", drawings=drawings, report=report,
                           equivalent=result.equivalent, found=found,
                           changed_colour="#e8590c", only_colour="#c2255c")


def write_html(result: DiffResult, report: str, path: str | os.PathLike) -> None:
    target = check_target(path)
    try:
        write_atomic(target, render_html(result, report))
    except OSError as exc:
        raise NetgenError(f"cannot write {path}: {exc.strerror or exc}") from exc
