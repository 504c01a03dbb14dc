"""The family's files run: OpenCV's Caffe importer and ONNX Runtime agree on the same weights,
validate's six checks pass, the caffemodel and model.onnx hold the same numbers, and the
1001-layer pre-activation net converts both ways.

Every new name runs at a small input size (64 for ImageNet nets). The default suite takes
ResNeXt-50 32x4d, CIFAR ResNet-164 and one-block-per-stage versions of each remaining block
configuration (64x4d, 32x8d, wide 2, ImageNet pre-activation); the full Wide, 101/200-layer
nets and CIFAR ResNet-1001 (whose files are hundreds of MB, or 4,339 layers) run under --slow.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from netgen.arch.builder import build
from netgen.arch.spec import spec_from_name
from netgen.arch.weights import initial_weights
from netgen.caffe.reader import read_caffe
from netgen.jobs.build import write_build
from netgen.jobs.validate import CHECK_NAMES, validate_folder

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")

RELATIVE_TOLERANCE = 1e-4
DEFAULT_NAMES = ["resnext50-32x4d-input64", "cifar10-preresnet164",
                 "resnext14-64x4d-1-1-1-1-bottleneck-input64",
                 "resnext14-32x8d-1-1-1-1-bottleneck-input64",
                 "wide-resnet14-2-1-1-1-1-bottleneck-input64",
                 "preresnet14-1-1-1-1-bottleneck-input64", "cifar10-preresnet110-A"]
SLOW_NAMES = ["wide-resnet50-2-input64", "resnext101-32x8d-input64", "resnext101-64x4d-input64",
              "wide-resnet101-2-input64", "preresnet200-input64", "cifar10-preresnet1001"]


def _opencv_and_ort(folder, spec, batch: int = 2, model=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits from cv2.dnn (deploy.prototxt + model.caffemodel) and from ORT (model.onnx,
    or `model`)."""
    size = spec.input_size
    x = np.random.default_rng(7).standard_normal((batch, 3, size, size)).astype(np.float32)
    net = cv2.dnn.readNetFromCaffe(str(folder / "deploy.prototxt"),
                                   str(folder / "model.caffemodel"))
    net.setInput(x)
    logits_name = f"fc{spec.num_classes}"
    cv_logits = net.forward(logits_name)
    session = ort.InferenceSession(str(model or folder / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ort_logits = session.run(None, {"data": x})[names.index(logits_name)]
    return cv_logits, ort_logits


def _check(tmp_path, name: str) -> None:
    spec = spec_from_name(name)
    folder = tmp_path / name
    write_build(spec, folder, weights=True)
    cv_logits, ort_logits = _opencv_and_ort(folder, spec)
    assert cv_logits.shape == ort_logits.shape == (2, spec.num_classes)
    assert np.isfinite(ort_logits).all()
    scale = float(np.max(np.abs(ort_logits)))
    assert scale > 0 and not np.allclose(ort_logits[0], ort_logits[1])  # the input reaches it
    assert float(np.max(np.abs(cv_logits - ort_logits))) <= RELATIVE_TOLERANCE * scale
    report = validate_folder(folder)
    assert [(c.number, c.status) for c in report.checks] == [(n, "PASS") for n in CHECK_NAMES], \
        "\n".join(report.lines())


@pytest.mark.parametrize("name", DEFAULT_NAMES)
def test_family_runs_in_opencv_and_ort_and_validates(tmp_path, name):
    _check(tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_NAMES)
def test_large_family_nets_run_in_opencv_and_ort_and_validate(tmp_path, name):
    _check(tmp_path, name)


def test_caffemodel_and_onnx_hold_the_same_weights(tmp_path):
    spec = spec_from_name("resnext50-32x4d-input64")
    folder = tmp_path / spec.name
    write_build(spec, folder, weights=True, seed=3)
    expected = initial_weights(build(spec), seed=3)
    _, caffe = read_caffe(folder / "deploy.prototxt", folder / "model.caffemodel")
    initializers = {t.name: numpy_helper.to_array(t)
                    for t in onnx.load(str(folder / "model.onnx")).graph.initializer}
    for layer in ("res2a_branch2b", "res5c_branch2b", "res3a_branch1", "conv1"):
        np.testing.assert_array_equal(caffe[layer][0], expected[layer][0])
        np.testing.assert_array_equal(initializers[f"{layer}.weight"], expected[layer][0])
    assert initializers["res2a_branch2b.weight"].shape == (128, 4, 3, 3)
    grouped = [n for n in onnx.load(str(folder / "model.onnx")).graph.node
               if n.op_type == "Conv" and any(a.name == "group" and a.i == 32 for a in n.attribute)]
    assert len(grouped) == 16  # one grouped 3x3 per block
    deploy = (folder / "deploy.prototxt").read_text()
    assert deploy.count("group: 32") == 16


def test_preact_caffemodel_and_onnx_agree_on_the_scales(tmp_path):
    spec = spec_from_name("cifar10-preresnet164")
    folder = tmp_path / spec.name
    write_build(spec, folder, weights=True)
    _, caffe = read_caffe(folder / "deploy.prototxt", folder / "model.caffemodel")
    initializers = {t.name: numpy_helper.to_array(t)
                    for t in onnx.load(str(folder / "model.onnx")).graph.initializer}
    damped = np.float32(1 / np.sqrt(54))
    np.testing.assert_array_equal(caffe["scale3b4_branch2c"][0], damped)
    np.testing.assert_array_equal(initializers["scale3b4_branch2c.weight"], damped)
    np.testing.assert_array_equal(initializers["scale_final.weight"], 1.0)


@pytest.mark.slow
def test_preresnet1001_converts_both_ways_and_diffs_equivalent(run_cli, tmp_path):
    spec = spec_from_name("cifar10-preresnet1001")
    folder = tmp_path / spec.name
    write_build(spec, folder, weights=True)
    onnx_out = tmp_path / "again.onnx"
    assert run_cli("convert", folder / "deploy.prototxt", folder / "model.caffemodel",
                   "-o", onnx_out).code == 0
    back = tmp_path / "back"
    back.mkdir()
    assert run_cli("convert", folder / "model.onnx", "-o", back / "deploy.prototxt").code == 0
    result = run_cli("diff", back / "deploy.prototxt", spec.name)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out
    # OpenCV on the files converted back from ONNX, ORT on the ONNX converted from Caffe.
    cv_logits, ort_logits = _opencv_and_ort(back, spec, model=onnx_out)
    assert np.isfinite(ort_logits).all()
    scale = float(np.max(np.abs(ort_logits)))
    assert float(np.max(np.abs(cv_logits - ort_logits))) <= RELATIVE_TOLERANCE * scale


def test_bench_times_a_family_build(tmp_path):
    from netgen.jobs.benchmarks import bench_path

    spec = spec_from_name("resnext14-32x4d-1-1-1-1-bottleneck-input64")
    write_build(spec, tmp_path / spec.name, weights=True)
    result = bench_path(tmp_path / spec.name, "cpu", (1, 2), repeat=1, warmup=1)
    assert result["network"] == spec.name and result["model"] == "model.onnx"
    assert [t["batch"] for t in result["timings"]] == [1, 2]
    assert all(t["ms_per_batch"] > 0 for t in result["timings"])
    assert result["build_s"] > 0


def test_family_builds_are_byte_identical_across_runs(tmp_path):
    for name in ("resnext14-8x4d-1-1-1-1-bottleneck-classes10-input64", "cifar10-preresnet20-A"):
        spec = spec_from_name(name)
        first = write_build(spec, tmp_path / "a" / name, weights=True)
        second = write_build(spec, tmp_path / "b" / name, weights=True)
        assert set(first) == set(second) and all(first[k] == second[k] for k in first), name
