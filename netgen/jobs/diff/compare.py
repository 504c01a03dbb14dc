"""Op-by-op comparison of two aligned main paths into a DiffResult (result.py), grouped
by summary.py."""

from __future__ import annotations

from netgen.analysis.compare import attr_diff, same_shortcut
from netgen.analysis.ops import op_word
from netgen.analysis.network import Side
from netgen.analysis.topology import Analysis, Entry, analyse
from netgen.jobs.diff.align import align, cut_scores, key
from netgen.jobs.diff.result import DiffResult, Row
from netgen.jobs.diff.summary import group_findings, representation_notes

CONTEXT = 3  # ops shown before and after the first divergence


def compare(a: Side, b: Side, strict: bool = False, left: Analysis | None = None) -> DiffResult:
    """Align the two sides by topology and list every difference (of the canonical forms
    unless `strict`), then group them (summary.py). `left`: A's analysis where the caller
    has made it already (identify reads the spec off it)."""
    left = left or analyse(a, not strict)
    right = analyse(b, not strict)
    ea, eb = left.entries, right.entries
    opcodes = []
    cuts_a, cuts_b = cut_scores(ea), cut_scores(eb)
    for tag, i1, i2, j1, j2 in align([key(e) for e in ea], [key(e) for e in eb], cuts_a, cuts_b):
        if tag != "replace":
            opcodes.append((tag, i1, i2, j1, j2))
            continue
        # Same types, other widths: pair them by type so the widths show as differences.
        for sub, a1, a2, b1, b2 in align([e.op.type for e in ea[i1:i2]],
                                         [e.op.type for e in eb[j1:j2]],
                                         cuts_a[i1:i2], cuts_b[j1:j2]):
            opcodes.append((sub, i1 + a1, i1 + a2, j1 + b1, j1 + b2))
    pairs: list[tuple[Entry, Entry]] = []
    rows: list[Row] = []
    layer_diffs: list[dict] = []
    shortcut_diffs: list[dict] = []
    structural: list[dict] = []
    first: tuple[int, int, str] | None = None

    def note_first(i: int, j: int, reason: str) -> None:
        nonlocal first
        if first is None or i < first[0]:
            first = (i, j, reason)

    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                x, y = ea[i], eb[j]
                pairs.append((x, y))
                row = Row("equal", x, y, attr_diff(x.op.attrs, y.op.attrs))
                if row.differences:
                    layer_diffs.append({"type": x.op.type, "a": list(x.op.layers),
                                        "b": list(y.op.layers), "fields": row.differences})
                    note_first(i, j, f"{x.op.type} {', '.join(row.differences)} differ")
                if x.shortcut is not None and y.shortcut is not None:
                    if not same_shortcut(x, y):
                        row.shortcut_difference = shortcut_diff(x, y)
                        shortcut_diffs.append(row.shortcut_difference)
                        note_first(i, j, "shortcut differs")
                rows.append(row)
            continue
        only_a, only_b = ea[i1:i2], eb[j1:j2]
        # A block present on one side only (plain vs residual): a shortcut difference.
        for entries, here in ((only_a, "a"), (only_b, "b")):
            for entry in entries:
                row = Row("delete", entry, None) if here == "a" else Row("insert", None, entry)
                if entry.shortcut is not None:
                    row.shortcut_difference = shortcut_diff(entry if here == "a" else None,
                                                            entry if here == "b" else None)
                    shortcut_diffs.append(row.shortcut_difference)
                rows.append(row)
        rest_a = [e for e in only_a if e.shortcut is None]
        rest_b = [e for e in only_b if e.shortcut is None]
        if rest_a or rest_b:
            structural.append({
                "a": [entry_json(e) for e in rest_a], "b": [entry_json(e) for e in rest_b],
                "after_a": ea[i1 - 1].op.describe() if i1 else None,
                "after_b": eb[j1 - 1].op.describe() if j1 else None,
            })
        if only_a or only_b:
            what = " ".join(op_word(e.op) for e in only_a) or "nothing"
            other = " ".join(op_word(e.op) for e in only_b) or "nothing"
            note_first(i1, j1, f"A has {what} where B has {other}")

    input_difference = None
    # The batch is representation (a symbolic batch reads as 1); the rest is architecture.
    skip = 0 if strict else 1
    shapes_a = [list(x.shape) for x in a.graph.inputs]
    shapes_b = [list(x.shape) for x in b.graph.inputs]
    if [s[skip:] for s in shapes_a] != [s[skip:] for s in shapes_b]:
        input_difference = {"a": shapes_a, "b": shapes_b}

    divergence = None
    if first is not None:
        i, j, reason = first
        divergence = {
            "position": i, "reason": reason,
            "a": {"op": entry_json(ea[i] if i < len(ea) else None), "context": _context(ea, i)},
            "b": {"op": entry_json(eb[j] if j < len(eb) else None), "context": _context(eb, j)},
        }
    result = DiffResult(left, right, pairs, layer_diffs, shortcut_diffs, structural, divergence,
                        input_difference, strict=strict, rows=rows)
    result.findings = group_findings(result)
    if not strict:
        result.notes = representation_notes(result)
    return result


def shortcut_diff(x: Entry | None, y: Entry | None) -> dict:
    def one(entry: Entry | None) -> dict:
        if entry is None:
            return {"block": None, "shortcut": "none (no shortcut)", "kind": "none", "ops": []}
        return {"block": entry.op.name, "index": entry.block,
                "shortcut": entry.shortcut.describe(), "kind": entry.shortcut.kind,
                "ops": [name for op in entry.shortcut.ops for name in op.layers]}

    return {"a": one(x), "b": one(y)}


def entry_json(entry: Entry | None) -> dict | None:
    if entry is None:
        return None
    out = {"type": entry.op.type, "layers": list(entry.op.layers), "attrs": entry.op.attrs}
    if entry.shortcut is not None:
        out["shortcut"] = entry.shortcut.describe()
    return out


def _context(entries: list[Entry], index: int) -> list[str]:
    lo, hi = max(0, index - CONTEXT), min(len(entries), index + CONTEXT + 1)
    return [("> " if i == index else "  ") + entries[i].op.describe() for i in range(lo, hi)]
