"""Property-based fuzzing of everything netgen reads from other people.

Every case must end in a correct result or in netgen's own one-line NetgenError (exit code 2
through the CLI). Any other exception -- RecursionError, MemoryError, protobuf's DecodeError,
KeyError, a numpy error -- fails the property, and hypothesis shrinks it to a small case.

Inputs are mutations of valid files netgen itself writes (so most mutations land close to
something meaningful) plus a hand-written net using every layer type the reader knows:
deleted, duplicated and swapped lines, values of the wrong type, absurd numbers (kernel 0,
stride 0, num_output 10^12, negative pads), dangling bottoms, cycles, duplicate tops that are
not in place, unknown layer types, nesting a million levels deep, truncation and invalid
UTF-8; truncated, bit-flipped and structurally damaged .caffemodel files; ONNX models with
missing initializers, unknown ops or broken attributes; and random command lines.

`--fuzz-examples N` sets the total number of cases, shared among the properties (evenly,
but the slower validate property gets half a share; default 200 per property, 100 for
validate; `make fuzz` runs 10,000). The search is derandomized, so a run is
reproducible and `make test` always checks the same sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.caffe import caffemodel, prototxt
from netgen.caffe import proto as caffe_proto
from netgen.caffe import reader as caffe_reader
from netgen.commands.cli import main
from netgen.errors import NetgenError

DEFAULT_PER_PROPERTY = 200
# Above this many weights a fuzzed net that reads fine is not also initialised (time, not
# safety: shape inference has already bounded it).
CHECK_WEIGHTS_BELOW = 2_000_000


# --------------------------------------------------------------------------- running properties


# Share of the budget per property, relative to 1 (the default): slower properties get less.
WEIGHTS = {"test_fuzz_cli_validate": 0.5}


def _per_property(config, name: str) -> int:
    names = [n for n in globals() if n.startswith("test_fuzz_")]
    weight = WEIGHTS.get(name, 1.0)
    total = config.getoption("--fuzz-examples")
    if total is None:
        return max(1, round(DEFAULT_PER_PROPERTY * weight))
    return max(1, math.ceil(total * weight / sum(WEIGHTS.get(n, 1.0) for n in names)))


def run_property(request, strategy, check) -> int:
    """Run `check` on `strategy`'s examples; record how many ran (conftest sums them)."""
    ran = 0

    @settings(max_examples=_per_property(request.config, request.node.originalname),
              derandomize=True, database=None,
              deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(case):
        nonlocal ran
        ran += 1
        check(case)

    try:
        prop()
    finally:
        request.node.user_properties.append(("fuzz_cases", ran))
    return ran


def one_line(exc: NetgenError) -> str:
    message = str(exc)
    assert message and "\n" not in message, f"NetgenError message is not one line: {message!r}"
    return message


# --------------------------------------------------------------------------- seeds


class Payload(bytes):
    """File contents whose repr in a failure report is a size and a digest, not megabytes."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, sha256 {hashlib.sha256(self).hexdigest()[:16]}>"




def _zoo_text() -> str:
    """A small net using every layer type and parameter spelling the reader accepts."""
    text = """
    name: "zoo"
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 4 dim: 12 dim: 12 } } }
    layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
            convolution_param { num_output: 8 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0
                                stride_h: 1 stride_w: 1 group: 2 dilation: 1 } }
    layer { name: "p1" type: "PReLU" bottom: "c1" top: "c1" }
    layer { name: "b1" type: "Bias" bottom: "c1" top: "c1" }
    layer { name: "sp" type: "Split" bottom: "c1" top: "s1" top: "s2" }
    layer { name: "sl" type: "Slice" bottom: "s1" top: "a" top: "b"
            slice_param { axis: 1 slice_point: 3 } }
    layer { name: "pw" type: "Power" bottom: "b" top: "pb"
            power_param { power: 2 scale: 0.5 shift: 1 } }
    layer { name: "cat" type: "Concat" bottom: "a" bottom: "pb" top: "cat"
            concat_param { axis: 1 } }
    layer { name: "mx" type: "Eltwise" bottom: "cat" bottom: "s2" top: "mx"
            eltwise_param { operation: MAX } }
    layer { name: "sm" type: "Eltwise" bottom: "mx" bottom: "s2" top: "sm"
            eltwise_param { operation: SUM coeff: 1 coeff: -1 } }
    layer { name: "pool" type: "Pooling" bottom: "sm" top: "pool"
            pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
    layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool"
            dropout_param { dropout_ratio: 0.3 } }
    layer { name: "gp" type: "Pooling" bottom: "pool" top: "gp"
            pooling_param { pool: MAX global_pooling: true } }
    layer { name: "fl" type: "Flatten" bottom: "gp" top: "fl" }
    layer { name: "rs" type: "Reshape" bottom: "fl" top: "rs"
            reshape_param { shape { dim: 0 dim: -1 dim: 1 dim: 1 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "rs" top: "rs" }
    layer { name: "sc" type: "Scale" bottom: "rs" top: "rs" scale_param { bias_term: true } }
    layer { name: "fc" type: "InnerProduct" bottom: "rs" top: "fc"
            inner_product_param { num_output: 5 } }
    layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" relu_param { negative_slope: 0.1 } }
    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    """
    # One field per line, as people write prototxt, so that line mutations make sense.
    return caffe_proto.format_message(caffe_proto.parse_net(text, "zoo"))


CIFAR8 = build(make_spec("cifar10", 8))
RESNET18 = build(make_spec("imagenet", 18, "B"))
SEEDS: dict[str, str] = {
    "cifar8-deploy": prototxt.render_deploy(CIFAR8),
    "resnet18-input-layer": prototxt.render_deploy(RESNET18, legacy_input=False),
    "cifar8-train-val": prototxt.render_train_val(
        CIFAR8, prototxt.data_options(make_spec("cifar10", 8))),
    "zoo": _zoo_text(),
}
ZOO = caffe_reader.read_prototxt(SEEDS["zoo"])
MODEL_SEEDS: dict[str, tuple[str, bytes]] = {
    "cifar8": (SEEDS["cifar8-deploy"], caffemodel.caffemodel_bytes(CIFAR8, initial_weights(CIFAR8))),
    "zoo": (SEEDS["zoo"], caffemodel.caffemodel_bytes(ZOO, initial_weights(ZOO))),
}

FIELD_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*)(\s*:\s*)(.*)$")
KEYS = sorted({m.group(2) for text in SEEDS.values() for line in text.splitlines()
               if (m := FIELD_LINE.match(line))})
ABSURD = ["0", "-1", "-7", "1", "2", "3", "1000000000000", "2147483647", "2147483648",
          "4294967295", "4294967296", "-2147483649", "18446744073709551616", "1e308", "1e-45",
          "-0.0", "inf", "-inf", "nan", "1.5", "true", "false", "\"text\"", "\"\"", "MAX", "AVE",
          "STOCHASTIC", "SUM", "PROD", "TEST", "TRAIN", "0x10", "{ }", "", "\"data\"",
          "\"\\377\\000\"", "'single'", "[1, 2]"]
TYPES = sorted(caffe_reader.SUPPORTED_TYPES) + sorted(caffe_reader.DATA_TYPES) + sorted(
    caffe_reader.LOSS_TYPES) + ["LRN", "Python", "Deconvolution", "", "convolution", "Input "]
NUMBER = re.compile(r"^-?[0-9.]+(e-?[0-9]+)?$")
IN_RANGE = [0, 0, 1, 2, 3, 4, 5, 7, 13, 64, 100, 1000, 65536, 1_000_000, 2**31 - 1, -1, -2, 0.5]
NEST_KEYS = ["a", "layer", "convolution_param", "weight_filler", "include", "lrn_param",
             "input_param", "shape", "state"]
NEST_DEPTHS = [1, 2, 3, 60, 1000, 100_000, 1_000_000]


# --------------------------------------------------------------------------- text mutations


def _layer_spans(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line of each top-level `layer {` block, by brace counting."""
    spans, start, depth = [], None, 0
    for i, line in enumerate(lines):
        if depth == 0 and line.startswith("layer {"):
            start = i
        depth += line.count("{") - line.count("}")
        if start is not None and depth == 0:
            spans.append((start, i))
            start = None
    return spans


def _names(lines: list[str], key: str) -> list[str]:
    return [m.group(4).strip('"') for line in lines
            if (m := FIELD_LINE.match(line)) and m.group(2) == key]


@st.composite
def text_mutation(draw, lines: list[str]):
    """Apply one mutation to `lines` (a list, changed in place); returns its description."""
    # Mostly mutations that keep the text parseable (they reach shape inference and the
    # wiring checks), some that break the syntax.
    kind = draw(st.sampled_from([
        "in_range", "in_range", "in_range", "in_range", "bottom", "bottom", "bottom", "top",
        "top", "type", "move_layer", "drop_layer", "duplicate_layer", "delete", "duplicate",
        "value", "value", "number", "key", "swap", "nest", "truncate", "insert"]))
    if not lines:
        lines.append("")
    index = draw(st.integers(0, len(lines) - 1))
    fields = [i for i, line in enumerate(lines) if FIELD_LINE.match(line)]
    if kind in ("in_range", "value", "number", "key", "bottom", "top", "type") and fields:
        wanted = {"bottom": "bottom", "top": "top", "type": "type"}.get(kind)
        candidates = [i for i in fields if not wanted or FIELD_LINE.match(lines[i]).group(2) == wanted]
        if kind == "in_range":
            candidates = [i for i in fields if NUMBER.match(FIELD_LINE.match(lines[i]).group(4))]
        index = draw(st.sampled_from(candidates or fields))
        indent, key, sep, value = FIELD_LINE.match(lines[index]).groups()
        if kind == "in_range":  # a number of the right type, but absurd for the field
            value = str(draw(st.sampled_from(IN_RANGE)))
        elif kind == "value":
            value = draw(st.sampled_from(ABSURD))
        elif kind == "number":
            value = str(draw(st.one_of(st.integers(-2**70, 2**70), st.integers(-3, 3),
                                       st.floats(allow_nan=True, allow_infinity=True))))
        elif kind == "key":
            key = draw(st.sampled_from(KEYS))
        elif kind == "type":
            value = f'"{draw(st.sampled_from(TYPES))}"'
        else:  # bottom / top: another blob of the file (a cycle, a clash) or none at all
            blobs = _names(lines, "top") + _names(lines, "bottom") + ["nowhere", ""]
            value = f'"{draw(st.sampled_from(sorted(set(blobs))))}"'
        lines[index] = f"{indent}{key}{sep}{value}"
        return f"{kind}@{index}: {lines[index].strip()[:80]}"
    if kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(draw(st.integers(0, len(lines))), lines[index])
    elif kind == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif kind == "nest":
        key = draw(st.sampled_from(NEST_KEYS))
        depth = draw(st.sampled_from(NEST_DEPTHS))
        closed = draw(st.booleans())
        lines.insert(index, f"{key} {{ " * depth + ("} " * depth if closed else ""))
        return f"nest@{index}: {key} x{depth} {'closed' if closed else 'open'}"
    elif kind == "truncate":
        text = "\n".join(lines)
        cut = draw(st.integers(0, len(text)))
        lines[:] = text[:cut].split("\n")
        return f"truncate@{cut}"
    elif kind == "insert":
        junk = draw(st.text(max_size=12))
        lines.insert(index, junk)
        return f"insert@{index}: {junk!r}"
    else:
        spans = _layer_spans(lines)
        if not spans:
            return "no layer"
        first, last = draw(st.sampled_from(spans))
        block = lines[first:last + 1]
        if kind in ("move_layer", "drop_layer"):
            del lines[first:last + 1]
        if kind in ("move_layer", "duplicate_layer"):
            starts = [s for s, _ in _layer_spans(lines)] + [len(lines)]
            at = draw(st.sampled_from(starts))
            lines[at:at] = block
        return f"{kind}: {block[1].strip() if len(block) > 1 else ''}"
    return f"{kind}@{index}"


@st.composite
def mutated_prototxt(draw):
    seed = draw(st.sampled_from(sorted(SEEDS)))
    lines = SEEDS[seed].split("\n")
    ops = [draw(text_mutation(lines)) for _ in range(draw(st.sampled_from([1, 1, 2, 3, 4])))]
    data = "\n".join(lines).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # occasionally break the encoding itself
        at = draw(st.integers(0, max(0, len(data) - 1)))
        byte = draw(st.integers(0, 255))
        data = data[:at] + bytes([byte]) + data[at + 1:]
        ops.append(f"byte@{at}={byte}")
    return seed, ops, Payload(data)


# --------------------------------------------------------------------------- checks


def check_graph(graph) -> None:
    """A graph the reader accepted must be usable by the rest of netgen."""
    assert graph.layers and graph.inputs
    for layer in graph.layers:
        assert len(layer.top_shapes) == len(layer.tops), layer.name
    counts = count(graph)
    assert counts.params >= 0 and counts.macs >= 0
    if sum(math.prod(s) for layer in graph.layers for s in layer.blob_shapes) < CHECK_WEIGHTS_BELOW:
        weights = initial_weights(graph)
        for layer in graph.layers:
            if layer.blob_shapes:
                assert [w.shape for w in weights[layer.name]] == list(layer.blob_shapes)
    # What was read can be written again and reads back as the same net.
    try:
        text = prototxt.render_deploy(graph, legacy_input=False)
    except NetgenError as exc:  # e.g. a nan power scale: readable, but not writable as text
        one_line(exc)
        return
    again = caffe_reader.read_prototxt(text)
    assert [(l.name, l.type, l.bottoms, l.tops, l.top_shapes) for l in again.layers] == \
        [(l.name, l.type, l.bottoms, l.tops, l.top_shapes) for l in graph.layers]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="netgen-fuzz-") as folder:
        yield Path(folder)


def test_seeds_are_valid():
    """Mutations start from files that read cleanly, so what breaks is the mutation."""
    for text in SEEDS.values():
        check_graph(caffe_reader.read_prototxt(text))
    for text, model in MODEL_SEEDS.values():
        graph = caffe_reader.read_prototxt(text)
        with tempfile.TemporaryDirectory() as folder:
            caffe_reader.weights_for(graph, _write(Path(folder), "m.caffemodel", model))


# --------------------------------------------------------------------------- properties


def test_fuzz_prototxt(request, scratch):
    """Mutated prototxt: a graph that works, or one line of NetgenError."""

    def check(case):
        _, _, data = case
        path = _write(scratch, "net.prototxt", data)
        try:
            graph = caffe_reader.read_prototxt(path)
        except NetgenError as exc:
            one_line(exc)
            return
        check_graph(graph)

    run_property(request, mutated_prototxt(), check)


def test_fuzz_prototxt_train_phase(request, scratch):
    """The same for phase TRAIN, with an explicit input shape: other rules, other paths."""

    def check(case):
        (_, _, data), shape = case
        path = _write(scratch, "train.prototxt", data)
        try:
            reading = caffe_reader.read_net(path, phase="TRAIN", input_shape=shape)
        except NetgenError as exc:
            one_line(exc)
            return
        check_graph(reading.graph)

    shapes = st.one_of(st.none(), st.tuples(*[st.sampled_from([1, 2, 3, 8, 32, 0, -1])] * 4),
                       st.lists(st.integers(-2, 40), max_size=6).map(tuple))
    run_property(request, st.tuples(mutated_prototxt(), shapes), check)


@st.composite
def mutated_caffemodel(draw):
    seed = draw(st.sampled_from(sorted(MODEL_SEEDS)))
    text, data = MODEL_SEEDS[seed]
    ops = []
    if draw(st.booleans()):
        data, op = draw(structural_mutation(data))
        ops.append(op)
    for _ in range(draw(st.integers(0 if ops else 1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "flip", "overwrite", "insert", "splice"]))
        if kind == "truncate":
            cut = draw(st.integers(0, len(data)))
            data = data[:cut]
            ops.append(f"truncate@{cut}")
        elif kind == "flip":
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(0, max(0, len(data) - 1)))
                bit = draw(st.integers(0, 7))
                if data:
                    data = data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
                ops.append(f"flip@{at}.{bit}")
        elif kind == "overwrite":
            at = draw(st.integers(0, len(data)))
            junk = draw(st.binary(min_size=1, max_size=16))
            data = data[:at] + junk + data[at + len(junk):]
            ops.append(f"overwrite@{at}")
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(max_size=16)) + data[at:]
            ops.append(f"insert@{at}")
        else:
            a, b = sorted((draw(st.integers(0, len(data))), draw(st.integers(0, len(data)))))
            at = draw(st.integers(0, len(data)))
            data = data[:at] + data[a:b] + data[at:]
            ops.append(f"splice {a}:{b}@{at}")
    return seed, Payload(text.encode()), ops, Payload(data)


@st.composite
def structural_mutation(draw, data: bytes):
    """Decode, damage one layer or blob in a way protobuf itself cannot notice, encode."""
    net = caffe_proto.NetParameter.FromString(data)
    layer = net.layer[draw(st.integers(0, len(net.layer) - 1))]
    kind = draw(st.sampled_from(["drop_layer", "drop_blob", "add_blob", "rename", "duplicate",
                                 "dims", "legacy", "double", "values", "no_data"]))
    blob = layer.blobs[draw(st.integers(0, len(layer.blobs) - 1))] if layer.blobs else None
    if kind == "drop_layer":
        net.layer.remove(layer)
    elif kind == "drop_blob" and blob is not None:
        layer.blobs.remove(blob)
    elif kind == "add_blob":
        values = np.array(draw(st.lists(st.floats(width=32), max_size=8)), dtype=np.float32)
        layer.blobs.append(caffe_proto.blob_from_array(values))
    elif kind == "rename":
        layer.name = draw(st.sampled_from([l.name for l in net.layer] + ["", "other"]))
    elif kind == "duplicate":
        net.layer.add().CopyFrom(layer)
    elif kind == "dims" and blob is not None:
        dims = draw(st.lists(st.one_of(st.integers(-2, 70), st.sampled_from([2**31, 2**40, 2**62])),
                             max_size=5))
        blob.shape.ClearField("dim")
        blob.shape.dim.extend(dims)
    elif kind == "legacy" and blob is not None:
        for name in draw(st.lists(st.sampled_from(["num", "channels", "height", "width"]),
                                  min_size=1, max_size=4)):
            setattr(blob, name, draw(st.integers(-2**31, 2**31 - 1)))
    elif kind == "double" and blob is not None:
        values = list(blob.data)
        blob.ClearField("data")
        blob.double_data.extend(values[:draw(st.integers(0, len(values)))])
    elif kind == "values" and blob is not None:
        special = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e38]))
        blob.data[draw(st.integers(0, len(blob.data) - 1))] = special if blob.data else None
    elif kind == "no_data" and blob is not None:
        blob.ClearField("data")
    return net.SerializeToString(), f"{kind} {layer.name}"


def test_fuzz_caffemodel(request, scratch):
    """Truncated, bit-flipped and damaged .caffemodel: weights that fit, or NetgenError."""

    def check(case):
        _, text, _, data = case
        proto = _write(scratch, "net.prototxt", text)
        model = _write(scratch, "net.caffemodel", data)
        try:
            graph, weights = caffe_reader.read_caffe(proto, model)
        except NetgenError as exc:
            one_line(exc)
            return
        for layer in graph.layers:
            if layer.blob_shapes:
                got = [w.shape for w in weights[layer.name]]
                assert got == list(layer.blob_shapes), layer.name
                assert all(w.dtype == np.float32 for w in weights[layer.name])

    run_property(request, mutated_caffemodel(), check)


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_clean_exit(code: int, err: str) -> None:
    """Exit 0, or exit 2 with exactly one line `error: ...` on stderr."""
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err


SMALL_INT = st.one_of(st.integers(-3, 60), st.sampled_from([10**12, 2**31, 2**63, -2**63]))


@st.composite
def spec_arguments(draw):
    args: list[str] = []
    maybe = lambda: draw(st.integers(0, 2)) == 0  # noqa: E731
    if maybe():
        args += ["--dataset", draw(st.sampled_from(["imagenet", "cifar10", "mnist", ""]))]
    if maybe():
        args += ["--depth", str(draw(st.one_of(st.sampled_from([18, 34, 50, 101, 152, 20, 110, 1202]),
                                              SMALL_INT)))]
    if maybe():
        args += ["--shortcut", draw(st.sampled_from(["A", "b", "C", "D", ""]))]
    if draw(st.integers(0, 4)) == 0:
        args.append("--plain")
    if maybe():
        stages = draw(st.lists(st.integers(-1, 12), max_size=6))
        text = ",".join(str(s) for s in stages)
        args += ["--stages", draw(st.sampled_from([text, text + ",", "x", "1,,2", "1e3"]))]
    if maybe():
        args += ["--block", draw(st.sampled_from(["basic", "bottleneck", "wide"]))]
    if maybe():
        args += ["--classes", str(draw(SMALL_INT))]
    if maybe():
        args += ["--input-size", str(draw(st.one_of(st.sampled_from([1, 7, 31, 32, 33, 224, 4096, 4097]),
                                                    SMALL_INT)))]
    if maybe():
        args += ["--stride-in", draw(st.sampled_from(["1x1", "3x3", "2x2"]))]
    if draw(st.integers(0, 4)) == 0:
        args.append("--imagenet-stages")
    return args


def test_fuzz_cli_summary(request):
    """Random architecture options: a summary, or one line `error: ...` and exit 2."""

    def check(args):
        code, out, err = run_cli("summary", "--json", *args)
        assert_clean_exit(code, err)
        if code == 0:
            assert '"parameters"' in out

    run_property(request, spec_arguments(), check)


def test_fuzz_cli_build(request, scratch):
    """`netgen build` with random options writes a build or says why not, in one line."""
    counter = iter(range(10**9))

    @st.composite
    def build_arguments(draw):
        # Small CIFAR nets only: what is fuzzed here is option handling, not big writes.
        args = ["--dataset", "cifar10", "--depth",
                str(draw(st.sampled_from([8, 14, 0, -8, 9, 10**12])))]
        for option, values in (
                ("--shortcut", ["A", "B", "C", "x"]),
                ("--classes", ["1", "10", "0", "-1", "1000001", "10000000000000"]),
                ("--input-size", ["8", "4", "3", "31", "0", "4096", "9999999"]),
                ("--data", ["lmdb", "imagedata", "hdf5", "dummy", "csv"]),
                ("--batch-size", ["1", "128", "0", "-5", "100000000000"]),
                ("--mean-value", ["104,117,123", "1", "a,b", "nan,1,2", ""]),
                ("--mean-file", ["m.binaryproto", ""]),
                ("--train-source", ["train_lmdb", "", "a\nb"]),
                ("--opset", ["13", "17", "21", "9", "25"]),
                ("--seed", ["0", "7", "-1", "18446744073709551616"]),
                ("--external-data", None), ("--plain", None), ("--input-layer", None)):
            if draw(st.integers(0, 3)) == 0:
                args += [option] if values is None else [option, draw(st.sampled_from(values))]
        return args

    def check(args):
        out = scratch / f"build-{next(counter)}"
        code, _, err = run_cli("build", *args, "--out", out)
        assert_clean_exit(code, err)
        if code == 2:
            assert not out.exists(), "a refused build left its folder behind"
        assert not [p.name for p in scratch.iterdir() if p.name.startswith(".")], \
            "temporary files left behind"

    run_property(request, build_arguments(), check)


# --------------------------------------------------------------------------- ONNX


# The ONNX importer's counterpart of the zoo: every op it maps (Split/Slice aside, which
# netgen's ONNX importer does not take).
ONNX_ZOO_TEXT = """
name: "zoo_onnx"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 4 dim: 12 dim: 12 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 8 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 group: 2 } }
layer { name: "p1" type: "PReLU" bottom: "c1" top: "c1" }
layer { name: "b1" type: "Bias" bottom: "c1" top: "c1" }
layer { name: "pw" type: "Power" bottom: "c1" top: "pb"
        power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "cat" type: "Concat" bottom: "c1" bottom: "pb" top: "cat" }
layer { name: "c2" type: "Convolution" bottom: "cat" top: "c2"
        convolution_param { num_output: 8 kernel_size: 1 } }
layer { name: "mx" type: "Eltwise" bottom: "c2" bottom: "c1" top: "mx"
        eltwise_param { operation: MAX } }
layer { name: "sm" type: "Eltwise" bottom: "mx" bottom: "c1" top: "sm"
        eltwise_param { operation: SUM coeff: 1 coeff: -1 } }
layer { name: "pool" type: "Pooling" bottom: "sm" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool" }
layer { name: "mp" type: "Pooling" bottom: "pool" top: "mp"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "gp" type: "Pooling" bottom: "mp" top: "gp"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fl" type: "Flatten" bottom: "gp" top: "fl" }
layer { name: "fc" type: "InnerProduct" bottom: "fl" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" relu_param { negative_slope: 0.1 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _onnx_seeds() -> dict[str, bytes]:
    from netgen.onnx import export as onnx_export

    seeds = {}
    for name, graph in (("cifar8", CIFAR8), ("zoo", caffe_reader.read_prototxt(ONNX_ZOO_TEXT))):
        model = onnx_export.to_onnx(graph, initial_weights(graph))
        seeds[name] = model.SerializeToString()
    return seeds


ONNX_SEEDS = _onnx_seeds()
ONNX_OPS = ["Conv", "Relu", "Add", "MaxPool", "AveragePool", "Gemm", "Concat", "Mul", "Pad",
            "Slice", "Softmax", "Reshape", "Flatten", "LRN", "FooOp", "Loop", "If", "Scan", ""]


@st.composite
def mutated_onnx(draw):
    """An ONNX model with one to three semantic injuries, sometimes also byte-level damage."""
    import onnx

    seed = draw(st.sampled_from(sorted(ONNX_SEEDS)))
    model = onnx.ModelProto.FromString(ONNX_SEEDS[seed])
    graph = model.graph
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([
            "drop_initializer", "drop_initializer", "op_type", "op_type", "drop_node",
            "node_input", "drop_node_input", "attribute", "drop_attribute", "dims", "dtype",
            "drop_graph_input", "input_dim", "opset", "duplicate_node", "external", "domain",
            "drop_output", "swap_nodes"]))
        node = graph.node[draw(st.integers(0, len(graph.node) - 1))] if graph.node else None
        init = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))] \
            if graph.initializer else None
        if kind == "drop_initializer" and init is not None:
            graph.initializer.remove(init)
        elif kind == "op_type" and node is not None:
            node.op_type = draw(st.sampled_from(ONNX_OPS))
        elif kind == "drop_node" and node is not None:
            graph.node.remove(node)
        elif kind == "node_input" and node is not None and node.input:
            names = [o for n in graph.node for o in n.output] + ["nowhere", ""]
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(names))
        elif kind == "drop_node_input" and node is not None and node.input:
            del node.input[draw(st.integers(0, len(node.input) - 1))]
        elif kind == "attribute" and node is not None and node.attribute:
            attr = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
            value = draw(st.sampled_from([0, -1, -3, 2, 7, 2**31, 2**62]))
            if attr.ints:
                attr.ints[draw(st.integers(0, len(attr.ints) - 1))] = value
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = value
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = draw(st.floats(width=32))
            else:
                attr.type = onnx.AttributeProto.STRING
                attr.s = b"x"
        elif kind == "drop_attribute" and node is not None and node.attribute:
            del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
        elif kind == "dims" and init is not None:
            dims = draw(st.lists(st.integers(-2, 70), max_size=5))
            del init.dims[:]
            init.dims.extend(dims)
        elif kind == "dtype" and init is not None:
            init.data_type = draw(st.sampled_from([0, 2, 6, 7, 8, 10, 11, 16, 99]))
        elif kind == "drop_graph_input" and graph.input:
            graph.input.remove(graph.input[0])
        elif kind == "input_dim" and graph.input:
            dims = graph.input[0].type.tensor_type.shape.dim
            if dims:
                dim = dims[draw(st.integers(0, len(dims) - 1))]
                choice = draw(st.sampled_from(["param", 0, -1, 1, 10**9]))
                if choice == "param":
                    dim.dim_param = "N"
                else:
                    dim.dim_value = choice
        elif kind == "opset":
            model.opset_import[0].version = draw(st.sampled_from([1, 6, 9, 12, 13, 21, 99]))
        elif kind == "duplicate_node" and node is not None:
            graph.node.insert(draw(st.integers(0, len(graph.node))), node)
        elif kind == "external" and init is not None:
            init.ClearField("raw_data")
            init.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", draw(st.sampled_from(
                    ["missing.data", "../../../etc/passwd", "/etc/passwd", "", "model.onnx"]))),
                               ("offset", draw(st.sampled_from(["0", "-1", "99999999999", "x"]))),
                               ("length", draw(st.sampled_from(["4", "0", "-4", "10**12"])))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
        elif kind == "domain" and node is not None:
            node.domain = draw(st.sampled_from(["com.microsoft", "ai.onnx.ml", "x"]))
        elif kind == "drop_output" and graph.output:
            graph.output.remove(graph.output[0])
        elif kind == "swap_nodes" and len(graph.node) > 1:
            i, j = draw(st.integers(0, len(graph.node) - 1)), draw(st.integers(0, len(graph.node) - 1))
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(graph.node[i])
            b.CopyFrom(graph.node[j])
            graph.node[i].CopyFrom(b)
            graph.node[j].CopyFrom(a)
        ops.append(kind)
    data = model.SerializeToString()
    if draw(st.integers(0, 4)) == 0:
        if draw(st.booleans()):
            cut = draw(st.integers(0, len(data)))
            data = data[:cut]
            ops.append(f"truncate@{cut}")
        else:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
            ops.append(f"flip@{at}")
    return seed, ops, Payload(data)


def test_fuzz_onnx_import(request, scratch):
    """Damaged ONNX models (missing initializers, unknown ops, ...): a graph, or NetgenError."""
    from netgen.onnx.reader import read_onnx

    folder = scratch / "onnx"
    folder.mkdir(exist_ok=True)

    def check(case):
        _, _, data = case
        path = _write(folder, "model.onnx", data)
        try:
            graph, weights = read_onnx(path)
        except NetgenError as exc:
            one_line(exc)
            return
        check_graph(graph)
        for layer in graph.layers:
            if layer.blob_shapes:
                assert [w.shape for w in weights[layer.name]] == list(layer.blob_shapes), layer.name

    run_property(request, mutated_onnx(), check)


def test_fuzz_cli_convert(request, scratch):
    """`netgen convert` both ways on damaged inputs: files written, or one line and exit 2."""
    folder = scratch / "convert"
    folder.mkdir(exist_ok=True)

    @st.composite
    def cases(draw):
        if draw(st.booleans()):
            _, _, data = draw(mutated_onnx())
            return "model.onnx", data, None, "out.prototxt"
        if draw(st.booleans()):
            _, text, _, model = draw(mutated_caffemodel())
            return "net.prototxt", text, model, "out.onnx"
        _, _, data = draw(mutated_prototxt())
        return "net.prototxt", data, None, "out.onnx"

    def check(case):
        name, data, model, output = case
        for stale in folder.iterdir():
            stale.unlink()
        args = ["convert", _write(folder, name, data)]
        if model is not None:
            args.append(_write(folder, "net.caffemodel", model))
        code, _, err = run_cli(*args, "--output", folder / output)
        assert_clean_exit(code, err)
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"temporary files left behind: {leftovers}"
        if code == 2:
            assert not (folder / output).exists(), "a failed conversion wrote its output"

    run_property(request, cases(), check)


def test_fuzz_cli_diff(request, scratch):
    """`netgen diff` of a valid net against a damaged one: 0, 1, or one line and exit 2."""
    folder = scratch / "diff"
    folder.mkdir(exist_ok=True)
    reference = _write(folder, "a.prototxt", SEEDS["cifar8-deploy"].encode())

    @st.composite
    def cases(draw):
        if draw(st.integers(0, 2)) == 0:
            _, _, data = draw(mutated_onnx())
            return "b.onnx", data
        _, _, data = draw(mutated_prototxt())
        return "b.prototxt", data

    def check(case):
        name, data = case
        code, out, err = run_cli("diff", reference, _write(folder, name, data))
        assert code in (0, 1, 2), (code, err)
        if code == 2:
            assert_clean_exit(code, err)

    run_property(request, cases(), check)


# --------------------------------------------------------------------------- fixed extremes


MILLION = 1_000_000


@pytest.mark.parametrize("where", ["top", "net_field", "unknown_layer", "param"])
def test_a_million_levels_of_nesting(tmp_path, where):
    """`a { a { ... } }` a million deep, at the top, in known and unknown messages."""
    nest = "a { " * MILLION + "} " * MILLION
    base = SEEDS["cifar8-deploy"]
    text = {
        "top": nest,
        "net_field": base + "\nstate { " + nest + "}\n",
        # An LRN layer: the reader re-parses leniently to name the unsupported type.
        "unknown_layer": base + '\nlayer { name: "n" type: "LRN" bottom: "data" top: "n" '
                                'lrn_param { ' + nest + "} }\n",
        "param": base.replace("convolution_param {", "convolution_param { weight_filler { "
                              + nest + "} ", 1),
    }[where]
    path = _write(tmp_path, "deep.prototxt", text.encode())
    with pytest.raises(NetgenError) as info:
        caffe_reader.read_prototxt(path)
    one_line(info.value)
    code, _, err = run_cli("convert", path, "--output", tmp_path / "deep.onnx")
    assert_clean_exit(code, err)
    assert code == 2


def test_a_million_nested_groups_in_a_caffemodel(tmp_path):
    """Binary nesting: a million nested groups of an unknown field."""
    start, end = caffe_proto._varint(999 << 3 | 3), caffe_proto._varint(999 << 3 | 4)
    model = _write(tmp_path, "deep.caffemodel", start * MILLION + end * MILLION)
    proto = _write(tmp_path, "net.prototxt", SEEDS["cifar8-deploy"].encode())
    with pytest.raises(NetgenError, match="not a Caffe model"):
        caffe_reader.read_caffe(proto, model)
    code, _, err = run_cli("convert", proto, model, "--output", tmp_path / "deep.onnx")
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1


def _mutate_json(draw, data: bytes) -> bytes:
    """One key of summary.json deleted or given a value of another type or an absurd size."""
    import json

    doc = json.loads(data)
    paths = []
    stack = [((), doc)]
    while stack:
        path, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, value in items:
            paths.append(path + (key,))
            stack.append((path + (key,), value))
    path = draw(st.sampled_from(sorted(paths, key=str)))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(st.sampled_from(
            [None, -1, 0, 10**30, "x", [], {}, 1.5, True, "A", "imagenet", [0, 0, 0]]))
    return json.dumps(doc).encode()


def test_fuzz_cli_validate(request, scratch):
    """`netgen validate` on a build folder with one damaged or missing file: a report (exit
    0 or 1), or one line and exit 2."""
    import shutil

    base = scratch / "validate-base"
    if not base.exists():
        assert run_cli("build", "--dataset", "cifar10", "--depth", "8", "--weights",
                       "--out", base)[0] == 0
    files = {p.name: p.read_bytes() for p in base.iterdir()}
    folder = scratch / "validate"

    @st.composite
    def cases(draw):
        name = draw(st.sampled_from(sorted(files)))
        if draw(st.integers(0, 9)) == 0:
            return name, None, ["deleted"]
        data = files[name]
        if name.endswith(".prototxt"):
            lines = data.decode().split("\n")
            ops = [draw(text_mutation(lines)) for _ in range(draw(st.integers(1, 2)))]
            return name, Payload("\n".join(lines).encode("utf-8", "surrogatepass")), ops
        if name == "summary.json":
            return name, Payload(_mutate_json(draw, data)), ["json"]
        if name == "model.onnx":
            _, ops, payload = draw(mutated_onnx())
            return name, payload, ops
        _, _, ops, payload = draw(mutated_caffemodel())
        return name, payload, ops

    def check(case):
        name, data, _ = case
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(base, folder)
        if data is None:
            (folder / name).unlink()
        else:
            (folder / name).write_bytes(data)
        code, out, err = run_cli("validate", folder, "--device", "cpu")
        assert code in (0, 1, 2), (code, err)
        if code == 2:
            assert_clean_exit(code, err)

    run_property(request, cases(), check)
