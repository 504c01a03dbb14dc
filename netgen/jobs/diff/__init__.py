"""`netgen diff`: do two networks, from any source, have the same architecture?

Each side (an ONNX file, a prototxt, or a build name such as `resnet50-B`) becomes the graph
IR, then a graph of logical ops, aligned with the other side by topology, never by name. One
module per step, each readable on its own:

- sides.py: a name, build folder, prototxt or ONNX file -> Side (netgen.jobs.network reads it);
- netgen.analysis (below the jobs, shared with draw, convert --like and identify): the
  logical ops in canonical form (representation dropped: folded vs separate BatchNorm, conv
  biases, trailing Softmax, flattening, global pooling spellings; a pooling's pad and
  rounding are architecture) or, with --strict, every layer as written; the main path,
  shortcuts (identity / projection / zero-pad), blocks and stages;
- align.py: the minimal edit script between two main paths;
- compare.py: op-by-op differences into a DiffResult (result.py), the object every report
  reads;
- summary.py: differences grouped in the paper's terms (blocks per stage, stride placement,
  groups and widths, shortcuts, the stem's pool1) and the representation notes;
- report.py: the text report; html.py: --html (both drawings side by side, differences
  in colour); numeric.py: --numeric (ONNX Runtime, weights mapped, BatchNorm folded where
  the two sides write it differently).
"""

from __future__ import annotations

from netgen.analysis.network import Side
from netgen.jobs.diff.align import align
from netgen.jobs.diff.compare import compare
from netgen.jobs.diff.numeric import fold, map_weights, run_numeric
from netgen.jobs.diff.report import format_text
from netgen.jobs.diff.result import DiffResult, Row
from netgen.jobs.diff.sides import load_side, parse_spec_name

__all__ = ["DiffResult", "Row", "Side", "align", "compare", "diff", "fold", "format_text",
           "load_side", "map_weights", "parse_spec_name", "run_numeric"]


def diff(arg_a: str, arg_b: str, numeric: bool = False, caffemodel_a: str | None = None,
         caffemodel_b: str | None = None, seed: int = 0, weights: str = "a", batch: int = 2,
         device: str = "cpu", strict: bool = False,
         input_shape: tuple[int, ...] | None = None) -> DiffResult:
    """Compare two networks, each a name, build folder, prototxt or ONNX file (see
    netgen.jobs.network); `numeric` also runs them; `strict` compares the files as written
    instead of their canonical forms; `input_shape` goes to either side whose data layer does
    not tell its input size."""
    from netgen.jobs.network import load_network

    a = load_network(arg_a, caffemodel=caffemodel_a, seed=seed, input_shape=input_shape)
    b = load_network(arg_b, caffemodel=caffemodel_b, seed=seed, input_shape=input_shape)
    result = compare(a, b, strict=strict)
    if numeric:
        result.numeric = run_numeric(result, weights=weights, batch=batch, seed=seed,
                                     device=device)
    return result
