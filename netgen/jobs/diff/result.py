"""What `diff` found: `DiffResult`, the stable interface every report reads (the text
report, `--json` and `--html` read only what is documented on it), and its `Row`s."""

from __future__ import annotations

from dataclasses import dataclass, field

from netgen.analysis.topology import Analysis, Entry, architecture


@dataclass
class Row:
    """One row of the alignment, in main-path order.

    `a` / `b`: the entry of each side (None where that side has nothing here); `tag`:
    "equal" (aligned ops), "delete" (A only) or "insert" (B only); `differences`: for
    aligned ops, field -> [A's value, B's value] of the attributes that differ;
    `shortcut_difference`: for joins, the shortcut difference (as in
    DiffResult.shortcut_differences) or None.
    """

    tag: str
    a: Entry | None
    b: Entry | None
    differences: dict = field(default_factory=dict)
    shortcut_difference: dict | None = None


@dataclass
class DiffResult:
    """What `diff` found. Stable attributes (read by the text, JSON and HTML reports):

    - `a`, `b`: the two sides' `Analysis` (`.side.label/.kind/.graph`, `.entries` (main
      path), `.blocks`, `.ops`, `.representation`, `.op_counts`, `.counts`);
    - `rows`: the alignment as `Row`s, both sides' main paths in order;
    - `pairs`: (A entry, B entry) of the aligned rows;
    - `layer_differences`, `shortcut_differences`, `structural_differences`: the op-level
      differences (dicts, as in `--json`);
    - `findings`: the differences grouped by what they mean (stride placement, blocks per
      stage, groups and widths, shortcuts, stem, head), each a dict with `kind`, `text` and
      `lines` (details);
    - `notes`: representation differences the canonical form ignored (strings);
    - `first_divergence`, `input_difference`, `numeric`, `strict`, `equivalent`, `to_json()`.
    """

    a: Analysis
    b: Analysis
    pairs: list[tuple[Entry, Entry]]
    layer_differences: list[dict]
    shortcut_differences: list[dict]
    structural_differences: list[dict]
    first_divergence: dict | None
    input_difference: dict | None
    numeric: dict | None = None
    strict: bool = True
    rows: list[Row] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict:
        out = {}
        for key_, analysis in (("a", self.a), ("b", self.b)):
            counts = analysis.counts
            out[key_] = {"parameters": counts.params, "multiply_adds": counts.macs}
        return out

    @property
    def structurally_equal(self) -> bool:
        same = (not self.layer_differences and not self.shortcut_differences
                and not self.structural_differences and self.input_difference is None
                and self.a.op_counts == self.b.op_counts)
        if self.strict:  # folding BatchNorm changes the stored parameters, not the network
            totals = self.totals
            same = same and totals["a"] == totals["b"]
        return same

    @property
    def equivalent(self) -> bool:
        same = self.structurally_equal
        if self.numeric is not None and self.numeric.get("max_abs_diff") is not None:
            same = same and self.numeric["within_tolerance"]
        return same

    def to_json(self) -> dict:
        totals = self.totals

        def side(key_: str, analysis: Analysis) -> dict:
            s = analysis.side
            out = {
                "source": s.label, "kind": s.kind, "name": s.graph.name,
                "input": {b.name: list(b.shape) for b in s.graph.inputs},
                "layers": len(s.graph.layers),
                "layer_counts": analysis.counts.layer_types,
                "op_counts": analysis.op_counts,
                "main_path_ops": len(analysis.entries),
                "blocks": len(analysis.blocks),
                "uncovered_ops": sorted(op.name for op in analysis.ops
                                        if op.id not in analysis.covered and op.type != "Input"),
                "parameters": totals[key_]["parameters"],
                "multiply_adds": totals[key_]["multiply_adds"],
                "weights": s.weights_source,
            }
            out["architecture"] = architecture(analysis)
            if not self.strict:
                out["representation"] = analysis.representation.to_json()
            return out

        return {
            "equivalent": self.equivalent,
            "strict": self.strict,
            "a": side("a", self.a),
            "b": side("b", self.b),
            "findings": self.findings,
            "notes": self.notes,
            "input_difference": self.input_difference,
            "first_divergence": self.first_divergence,
            "layer_differences": self.layer_differences,
            "shortcut_differences": self.shortcut_differences,
            "structural_differences": self.structural_differences,
            "numeric": self.numeric,
        }
