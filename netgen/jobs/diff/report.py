"""The text report of `diff`: a header per side, the verdict, grouped findings and the
representation notes (canonical, the default), or every op-level difference (--strict).

It reads only DiffResult's documented attributes and to_json(), as --json and --html do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netgen.jobs.diff.result import DiffResult


def format_text(result: "DiffResult") -> str:
    """The report `netgen diff` prints."""
    return format_strict(result) if result.strict else format_canonical(result)


def _header(data: dict) -> list[str]:
    lines = []
    for key in ("a", "b"):
        s = data[key]
        inputs = ", ".join(f"{n} {shape}" for n, shape in s["input"].items())
        lines.append(f"{key.upper()}: {s['source']} ({s['kind']}, {s['name']}): input {inputs}; "
                     f"{s['layers']} layers, {sum(s['op_counts'].values())} ops, "
                     f"{s['blocks']} blocks; {s['parameters']:,} parameters, "
                     f"{s['multiply_adds']:,} multiply-adds")
    return lines


def _footer(data: dict) -> list[str]:
    lines = []
    for key in ("a", "b"):
        if data[key]["uncovered_ops"]:
            names = data[key]["uncovered_ops"]
            lines.append(f"{key.upper()} has {len(names)} op(s) off the main path and its "
                         f"shortcuts: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
    lines.append(f"parameters: A {data['a']['parameters']:,}  B {data['b']['parameters']:,}")
    lines.append(f"multiply-adds: A {data['a']['multiply_adds']:,}  B {data['b']['multiply_adds']:,}")
    numeric = data["numeric"]
    if numeric is not None:
        if numeric.get("max_abs_diff") is None:
            lines.append(f"numeric: not compared: {numeric['skipped']}")
        else:
            lines.append(f"numeric: max |A - B| = {numeric['max_abs_diff']:.3g} on the "
                         f"{numeric['compared']} (batch {numeric['batch']}, {numeric['weights']}; "
                         f"tolerance {numeric['tolerance']:.3g})")
            if numeric.get("folded"):
                lines.append(f"numeric: to map weights between folded and separate "
                             f"BatchNorm, {numeric['folded']} (in float64)")
    return lines


def format_canonical(result: "DiffResult") -> str:
    """Default: what differs in architecture, grouped; what differs in representation."""
    data = result.to_json()
    lines = _header(data)
    arch_a, arch_b = data["a"]["architecture"]["text"], data["b"]["architecture"]["text"]
    lines.append(f"architecture: {arch_a} (both)" if arch_a == arch_b
                 else f"architecture: A {arch_a} | B {arch_b}")
    if data["equivalent"]:
        lines.append("verdict: EQUIVALENT (same architecture; --strict compares the files "
                     "layer by layer)")
    elif result.structurally_equal:
        lines.append("verdict: DIFFERENT (same architecture, different numbers)")
    else:
        lines.append(f"verdict: DIFFERENT ({len(data['findings'])} difference"
                     f"{'s' if len(data['findings']) != 1 else ''})")
    for finding in data["findings"]:
        lines.append(f"  - {finding['text']}")
        lines.extend(f"      {line}" for line in finding["lines"])
    if data["notes"]:
        lines.append("representation (not compared):")
        lines.extend(f"  - {note}" for note in data["notes"])
    lines += _footer(data)
    return "\n".join(lines) + "\n"


def format_strict(result: "DiffResult") -> str:
    """--strict: the exact comparison, every op-level difference listed."""
    data = result.to_json()
    lines = _header(data)
    lines.append("ops by type:")
    types = sorted(set(data["a"]["op_counts"]) | set(data["b"]["op_counts"]))
    width = max([len(t) for t in types] + [4])
    lines.append(f"  {'':<{width}}  {'A':>6}  {'B':>6}")
    for t in types:
        ca, cb = data["a"]["op_counts"].get(t, 0), data["b"]["op_counts"].get(t, 0)
        mark = "" if ca == cb else "  *"
        lines.append(f"  {t:<{width}}  {ca:>6}  {cb:>6}{mark}")
    verdict = "EQUIVALENT" if data["equivalent"] else "DIFFERENT"
    lines.append(f"verdict: {verdict}")
    if data["input_difference"]:
        lines.append(f"input shapes differ: A {data['input_difference']['a']}, "
                     f"B {data['input_difference']['b']}")
    div = data["first_divergence"]
    if div:
        lines.append(f"first divergence along the main path (op {div['position']}): {div['reason']}")
        for key in ("a", "b"):
            lines.append(f"  {key.upper()}:")
            lines.extend(f"    {line}" for line in div[key]["context"])
    if data["shortcut_differences"]:
        lines.append(f"shortcut differences ({len(data['shortcut_differences'])}):")
        for d in data["shortcut_differences"]:
            a, b = d["a"], d["b"]
            lines.append(f"  A {a['block'] or '-'}: {a['shortcut']}  |  B {b['block'] or '-'}: "
                         f"{b['shortcut']}")
    if data["layer_differences"]:
        lines.append(f"layer differences ({len(data['layer_differences'])}):")
        for d in data["layer_differences"]:
            fields = "; ".join(f"{k} {v[0]} vs {v[1]}" for k, v in d["fields"].items())
            lines.append(f"  {d['type']} A {'/'.join(d['a'])} | B {'/'.join(d['b'])}: {fields}")
    if data["structural_differences"]:
        lines.append(f"structural differences ({len(data['structural_differences'])}):")
        for d in data["structural_differences"]:
            a = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["a"]) or "nothing"
            b = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["b"]) or "nothing"
            lines.append(f"  A: {a} (after {d['after_a']})  |  B: {b} (after {d['after_b']})")
    return "\n".join(lines + _footer(data)) + "\n"
