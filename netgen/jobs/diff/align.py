"""Alignment of two main paths: a minimal edit script over op keys.

The main paths (each block's residual ops, then its join) are aligned as sequences of op
types, widths and kernels (`key`), never by name; ops of one type that differ in width are
paired in a second pass (see compare.py). Myers' O(ND) algorithm keeps 600 identical blocks
linear, and insertions slide to block boundaries so that a deeper stage aligns block by
block.
"""

from __future__ import annotations

from netgen.analysis.topology import Entry

def key(entry: Entry) -> tuple:
    """What must agree for two main-path ops to be aligned at first: the op type, its widths
    and kernel, so that a stage with more blocks aligns block by block instead of shifting
    into the next stage. Ops of one type that differ in these are paired in a second pass,
    and every attribute (stride and pad too) is compared on the pairs."""
    a = entry.op.attrs
    width = a.get("out_channels", a.get("channels", a.get("out_features")))
    return entry.op.type, width, a.get("in_channels"), tuple(a.get("kernel", ()))


MAX_EDIT_DISTANCE = 4000  # beyond this the two nets are too unlike to align op by op


def align(a: list, b: list, score_a: list[int] | None = None,
          score_b: list[int] | None = None) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes of a minimal edit script (Myers' O(ND) algorithm, iterative).

    difflib's matcher is quadratic on long repetitive sequences such as 600 identical
    blocks; Myers' algorithm costs O((N + M) D) for D differences. Among the equally short
    scripts, an inserted or deleted run is slid to where its ends score best (score_x[t]:
    how good a cut before item t of x is, e.g. a block boundary), as git's diff heuristics do.
    """
    codes = {}
    ia = [codes.setdefault(x, len(codes)) for x in a]
    ib = [codes.setdefault(x, len(codes)) for x in b]
    n, m = len(ia), len(ib)
    lo = 0
    while lo < n and lo < m and ia[lo] == ib[lo]:
        lo += 1
    hi_a, hi_b = n, m
    while hi_a > lo and hi_b > lo and ia[hi_a - 1] == ib[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    moves = _myers(ia[lo:hi_a], ib[lo:hi_b])
    ops: list[tuple[str, int, int]] = [("=", i, i) for i in range(lo)]
    if moves is None:  # too far apart: everything between the common ends is one change
        ops += [("-", i, -1) for i in range(lo, hi_a)] + [("+", -1, j) for j in range(lo, hi_b)]
    else:
        ops += [(t, i + lo if i >= 0 else -1, j + lo if j >= 0 else -1) for t, i, j in moves]
    ops += [("=", hi_a + k, hi_b + k) for k in range(n - hi_a)]
    if score_a is not None and score_b is not None:
        _slide(ops, ia, ib, score_a, score_b)
    return _group(ops, n, m)


def _slide(ops: list[tuple[str, int, int]], ia: list[int], ib: list[int],
           score_a: list[int], score_b: list[int]) -> None:
    """Move each pure insertion/deletion run, in place, to its best-scoring equivalent spot."""
    k = 0
    while k < len(ops):
        tag = ops[k][0]
        if tag == "=":
            k += 1
            continue
        end = k
        while end < len(ops) and ops[end][0] == tag:
            end += 1
        if (end < len(ops) and ops[end][0] not in ("=", tag)) or (k and ops[k - 1][0] not in ("=", tag)):
            k = end  # part of a replacement: leave it
            continue
        side, keys, score = (2, ib, score_b) if tag == "+" else (1, ia, score_a)
        first, last = ops[k][side], ops[end - 1][side] + 1  # the run covers keys[first:last]
        length = last - first
        # How far the run may move up and down without changing the edit's cost.
        up = 0
        while (k - up - 1 >= 0 and ops[k - up - 1][0] == "=" and first - up - 1 >= 0
               and keys[first - up - 1] == keys[last - up - 1]):
            up += 1
        down = 0
        while (end + down < len(ops) and ops[end + down][0] == "=" and last + down < len(keys)
               and keys[first + down] == keys[last + down]):
            down += 1
        if up or down:
            def quality(shift: int) -> tuple[int, int]:
                start = first + shift
                stop = start + length
                cut = score[start] if start < len(score) else 2
                cut += score[stop] if stop < len(score) else 2
                return cut, -abs(shift)
            best = max(range(-up, down + 1), key=quality)
            if best:
                # The moved-over equal pairs keep their other-side partners in order.
                lo, hi = k - up, end + down
                equal_others = [op[3 - side] for op in ops[lo:hi] if op[0] == "="]
                run_start = first + best
                seq = []
                mine = first - up
                others = iter(equal_others)
                for pos in range(mine, last + down):
                    if run_start <= pos < run_start + length:
                        seq.append((tag, pos, -1) if side == 1 else (tag, -1, pos))
                    else:
                        other = next(others)
                        seq.append(("=", pos, other) if side == 1 else ("=", other, pos))
                ops[lo:hi] = seq
        k = end


def _myers(a: list[int], b: list[int]) -> list[tuple[str, int, int]] | None:
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return [("-", i, -1) for i in range(n)] + [("+", -1, j) for j in range(m)]
    v = {1: 0}
    trace = []
    for d in range(min(n + m, MAX_EDIT_DISTANCE) + 1):
        new = {}
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v.get(k - 1, -1) < v.get(k + 1, -1)):
                x = v[k + 1]
            else:
                x = v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            new[k] = x
            if x >= n and y >= m:
                trace.append(new)
                return _backtrack(trace, n, m)
        trace.append(new)
        v = new
    return None


def _backtrack(trace: list[dict], n: int, m: int) -> list[tuple[str, int, int]]:
    moves: list[tuple[str, int, int]] = []
    x, y = n, m
    for d in range(len(trace) - 1, 0, -1):
        prev = trace[d - 1]
        k = x - y
        if k == -d or (k != d and prev.get(k - 1, -1) < prev.get(k + 1, -1)):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = prev[prev_k]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x, y = x - 1, y - 1
            moves.append(("=", x, y))
        if x == prev_x:
            moves.append(("+", -1, prev_y))
        else:
            moves.append(("-", prev_x, -1))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x, y = x - 1, y - 1
        moves.append(("=", x, y))
    moves.reverse()
    return moves


def _group(ops: list[tuple[str, int, int]], n: int, m: int) -> list[tuple[str, int, int, int, int]]:
    out: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    k = 0
    while k < len(ops):
        if ops[k][0] == "=":
            start_i, start_j = i, j
            while k < len(ops) and ops[k][0] == "=":
                i, j, k = i + 1, j + 1, k + 1
            out.append(("equal", start_i, i, start_j, j))
            continue
        start_i, start_j = i, j
        while k < len(ops) and ops[k][0] != "=":
            if ops[k][0] == "-":
                i += 1
            else:
                j += 1
            k += 1
        tag = "replace" if i > start_i and j > start_j else "delete" if i > start_i else "insert"
        out.append((tag, start_i, i, start_j, j))
    assert i == n and j == m, (i, n, j, m)
    return out


def cut_scores(entries: list[Entry]) -> list[int]:
    """How natural a cut before each entry is: 2 at a block boundary (after a join and the
    ReLU that follows it), 1 after any other ReLU (a unit of a plain net), else 0."""
    scores = []
    for t in range(len(entries)):
        prev = entries[t - 1] if t else None
        before = entries[t - 2] if t > 1 else None
        if t == 0 or (prev.shortcut is not None and entries[t].op.type != "ReLU"):
            scores.append(2)
        elif prev.op.type == "ReLU" and before is not None and before.shortcut is not None:
            scores.append(2)
        elif prev.op.type == "ReLU":
            scores.append(1)
        else:
            scores.append(0)
    return scores
