"""Scale: very deep networks, no recursion limits, and ONNX files with external data.

- A 10,000-layer network in the paper's sense (CIFAR-10 depth 9998: 44,995 Caffe layers)
  builds and reads back; a CIFAR ResNet-1202 converts to ONNX and diffs against its prototxt;
  the 10,000-layer net does too under --slow.
- The whole pipeline (build, emit, read back, ONNX export and import) runs under a small
  fixed recursion limit for a shallow and for a deep net alike: no walk recurses per layer.
- --external-data writes model.onnx + model.onnx.data that ONNX Runtime loads and that
  computes exactly what the single-file model computes; a real model over 2 GB (ImageNet
  layout with 300,000 classes) takes that path by itself under --slow.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from small_stack import pipeline, with_small_stack

from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.caffe import reader as caffe_reader
from netgen.jobs.build import BuildOptions, render_files, write_build

TEN_THOUSAND = make_spec("cifar10", 9998)


def same_graph(a, b) -> None:
    assert len(a.layers) == len(b.layers)
    assert [(l.name, l.type, l.bottoms, l.tops, l.top_shapes, l.blob_shapes) for l in a.layers] \
        == [(l.name, l.type, l.bottoms, l.tops, l.top_shapes, l.blob_shapes) for l in b.layers]


def test_ten_thousand_layer_net_builds_and_reads_back(tmp_path):
    out = tmp_path / TEN_THOUSAND.name
    files = write_build(TEN_THOUSAND, out, onnx=False)
    summary = json.loads(files["summary.json"])
    assert TEN_THOUSAND.depth == 9998 and summary["layers"] == 44_995
    assert summary["parameters"] == 161_939_930
    graph = build(TEN_THOUSAND)
    same_graph(caffe_reader.read_prototxt(out / "deploy.prototxt"), graph)


def test_no_recursion_grows_with_depth():
    """The same small stack allowance serves a 6-block net and a 1,200-block one."""
    layers = with_small_stack(lambda: [pipeline(make_spec("cifar10", d)) for d in (8, 2402)])
    assert all(imported > 0 for _, _, imported in layers)
    assert layers[1][0] > 10_000


def _convert_and_diff(tmp_path, run_cli, spec) -> None:
    out = tmp_path / "net"
    write_build(spec, out, onnx=False)
    deploy = out / "deploy.prototxt"
    converted = tmp_path / "converted.onnx"
    assert run_cli("convert", deploy, "--output", converted).code == 0
    result = run_cli("diff", deploy, converted)
    assert result.code == 0, result.out + result.err
    back = tmp_path / "back.prototxt"
    assert run_cli("convert", converted, "--output", back).code == 0
    same_graph(caffe_reader.read_prototxt(back), caffe_reader.read_prototxt(deploy))


def test_resnet1202_converts_to_onnx_and_diffs(tmp_path, run_cli):
    _convert_and_diff(tmp_path, run_cli, make_spec("cifar10", 1202))


@pytest.mark.slow
def test_ten_thousand_layer_net_converts_to_onnx_and_diffs(tmp_path, run_cli):
    _convert_and_diff(tmp_path, run_cli, TEN_THOUSAND)


# --------------------------------------------------------------------------- external data


def _ort_outputs(path, batch: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})


def test_external_data_loads_in_ort_and_matches_single_file(tmp_path, run_cli):
    args = ["build", "--dataset", "cifar10", "--depth", "20"]
    assert run_cli(*args, "--out", tmp_path / "single").code == 0
    assert run_cli(*args, "--external-data", "--out", tmp_path / "split").code == 0
    single, split = tmp_path / "single" / "model.onnx", tmp_path / "split" / "model.onnx"
    data = tmp_path / "split" / "model.onnx.data"
    assert not (tmp_path / "single" / "model.onnx.data").exists()
    assert data.stat().st_size > 1_000_000 > split.stat().st_size
    import onnx

    onnx.checker.check_model(str(split), full_check=True)
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    for a, b in zip(_ort_outputs(single, batch), _ort_outputs(split, batch)):
        np.testing.assert_array_equal(a, b)
    # The pair moves together (the location is the bare file name) ...
    moved = tmp_path / "moved"
    (tmp_path / "split").rename(moved)
    for a, b in zip(_ort_outputs(single, batch), _ort_outputs(moved / "model.onnx", batch)):
        np.testing.assert_array_equal(a, b)
    # ... and netgen reads it back, validates it and diffs it against the single file.
    from netgen.onnx.reader import read_onnx

    same_graph(read_onnx(moved / "model.onnx")[0], read_onnx(single)[0])
    assert run_cli("diff", single, moved / "model.onnx").code == 0
    assert run_cli("validate", moved).code == 0


def test_external_data_is_deterministic_and_aligned():
    spec = make_spec("cifar10", 8)
    first = render_files(spec, BuildOptions(external_data=True))
    second = render_files(spec, BuildOptions(external_data=True))
    assert first == second
    import onnx

    model = onnx.ModelProto.FromString(first["model.onnx"])
    offsets = [int(e.value) for t in model.graph.initializer for e in t.external_data
               if e.key == "offset"]
    assert offsets and all(o % 4096 == 0 for o in offsets)


OVER_2GB = ["--stages", "3,4,6,3", "--classes", "300000"]


@pytest.mark.slow
def test_model_over_2gb_uses_external_data_and_runs(tmp_path):
    """A real model over protobuf's 2 GB: external data chosen automatically, ORT runs it.

    Run in a subprocess so that its memory (about 10 GB at peak) is returned afterwards.
    """
    out = tmp_path / "big"
    script = f"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from netgen.commands.cli import main
code = main(["build", *{OVER_2GB!r}, "--out", {str(out)!r}])
build_s = time.perf_counter() - t0
assert code == 0
import onnx, onnxruntime as ort
t0 = time.perf_counter()
onnx.checker.check_model({str(out / "model.onnx")!r})
check_s = time.perf_counter() - t0
t0 = time.perf_counter()
session = ort.InferenceSession({str(out / "model.onnx")!r}, providers=["CPUExecutionProvider"])
load_s = time.perf_counter() - t0
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
t0 = time.perf_counter()
prob = session.run(["prob"], {{session.get_inputs()[0].name: x}})[0]
run_s = time.perf_counter() - t0
assert prob.shape == (1, 300000) and abs(float(prob.sum()) - 1) < 1e-3
peak_mb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
del session
from netgen.jobs.validate import validate_folder
t0 = time.perf_counter()
report = validate_folder({str(out)!r}, "cpu")
validate_s = time.perf_counter() - t0
assert report.ok, report.lines()
print(json.dumps({{"build_s": build_s, "check_s": check_s, "ort_load_s": load_s,
                   "ort_run_s": run_s, "build_and_run_peak_mb": peak_mb,
                   "validate_s": validate_s}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.splitlines()[-1])
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    print(json.dumps({**figures, "sizes": sizes}, indent=1))
    assert sizes["model.onnx.data"] > 2**31 > 10 * sizes["model.onnx"]


def test_scaling_benchmark_measures_in_fresh_processes(tmp_path):
    """The depth-scaling section of the benchmarks, on two small nets."""
    from netgen.jobs import bench_scaling

    rows = bench_scaling.run(tmp_path, [("CIFAR-10 ResNet-8", {"dataset": "cifar10", "depth": 8}),
                                        ("CIFAR-10 ResNet-14", {"dataset": "cifar10", "depth": 14})])
    text = bench_scaling.render(rows)
    assert "| CIFAR-10 ResNet-14 | 67 | 172,506 |" in text
    assert rows[1]["weights"]["sizes"]["model.caffemodel"] > rows[0]["weights"]["sizes"]["model.caffemodel"]
    assert list(tmp_path.iterdir()) == []
