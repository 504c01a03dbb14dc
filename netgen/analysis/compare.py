"""How the ops and shortcuts of two analyses are compared: attribute by attribute, floats
to a relative 1e-6, a bias read as zeros equal to no bias and to a bias (ops.ZERO_BIAS)."""

from __future__ import annotations

import math

from netgen.analysis.ops import ZERO_BIAS
from netgen.analysis.topology import Entry


def attr_diff(a: dict, b: dict) -> dict:
    keys = list(dict.fromkeys(list(a) + list(b)))
    return {k: [a.get(k), b.get(k)] for k in keys if not _same(a.get(k), b.get(k))}


def same_shortcut(x: Entry, y: Entry) -> bool:
    """The same kind with the same attributes, but for the norm after a projection's
    convolution (the diff says which norms differ once, for the blocks and shortcuts)."""
    sx, sy = x.shortcut, y.shortcut
    return sx.kind == sy.kind and _same(_without_norm(sx.attrs), _without_norm(sy.attrs))


def _without_norm(attrs: dict) -> dict:
    if not isinstance(attrs.get("conv"), dict) or "norm" not in attrs["conv"]:
        return attrs
    return dict(attrs, conv={k: v for k, v in attrs["conv"].items() if k != "norm"})


def _same(x, y) -> bool:
    if ZERO_BIAS in (x, y) and {type(x), type(y)} <= {bool, str}:
        return True
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12)
    return x == y
