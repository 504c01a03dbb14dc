"""`netgen validate`, the ONNX-side counter and the paper figures table."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import Figure, figures_for, is_paper_network
from netgen.arch.shapes import infer
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.jobs.build import write_build
from netgen.jobs.paper import paper_specs
from netgen.jobs.validate import CHECK_NAMES, validate_folder
from netgen.onnx.count import count_onnx
from netgen.onnx.export import to_onnx

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    write_build(make_spec("cifar10", 20), root / "cifar20", weights=True)
    write_build(make_spec("imagenet", 18), root / "resnet18", weights=True)
    write_build(make_spec("cifar10", 8), root / "bare8", weights=False, onnx=False)
    return root


def _copy(builds, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(builds / name, target)
    return target


# --------------------------------------------------------------------------- whole folders


@pytest.mark.parametrize("name", ["cifar20", "resnet18"])
def test_built_folder_passes_all_six_checks(run_cli, builds, name):
    result = run_cli("validate", builds / name, "--device", "cpu")
    assert result.code == 0, result.out
    lines = [line for line in result.out.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert [line.split()[:3] for line in lines] == [
        ["PASS", str(n), f"{CHECK_NAMES[n]}:"] for n in range(1, 7)]
    assert "all checks passed" in result.out


def test_json_report_has_the_figures(run_cli, builds):
    result = run_cli("validate", builds / "cifar20", "--json", "--device", "cpu", "--batch", "3")
    assert result.code == 0
    report = json.loads(result.out)
    assert report["ok"] is True and report["network"] == "cifar10-resnet20-A"
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["status"] for c in report["checks"]] == ["PASS"] * 6
    assert "269,722 parameters" in checks["counts"]["figure"]
    assert "0.27 M (Table 6)" in checks["counts"]["figure"]
    assert "40.6 M" in checks["counts"]["figure"]
    assert "fc10 [3, 10]" in checks["forward"]["figure"]
    assert "76 tensors" in checks["onnx"]["figure"]


def test_folder_without_weights_or_onnx_gets_generated_ones(builds):
    assert not (builds / "bare8" / "model.onnx").exists()
    report = validate_folder(builds / "bare8", "cpu")
    assert report.ok, report.lines()
    assert [c.status for c in report.checks] == ["PASS"] * 6
    assert any("seed 0" in note for note in report.notes)
    assert any("no model.onnx" in note for note in report.notes)


def test_edited_summary_fails_the_counts_check(run_cli, builds, tmp_path):
    folder = _copy(builds, "cifar20", tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    summary["parameters"] += 1
    (folder / "summary.json").write_text(json.dumps(summary))
    result = run_cli("validate", folder, "--device", "cpu")
    assert result.code == 1
    assert "FAIL 4 counts: parameters: ONNX graph 269,722, summary.json 269723" in result.out
    assert "FAILED: 4 counts" in result.out


def test_prototxt_typo_fails_the_prototxt_check(run_cli, builds, tmp_path):
    folder = _copy(builds, "cifar20", tmp_path)
    text = (folder / "train_val.prototxt").read_text()
    (folder / "train_val.prototxt").write_text(text.replace("num_output", "num_ouput", 1))
    result = run_cli("validate", folder, "--device", "cpu")
    assert result.code == 1
    assert "FAIL 1 prototxt" in result.out and "num_ouput" in result.out
    assert "PASS 3 forward" in result.out  # the other checks still run


def test_changed_onnx_weights_fail_formats_and_opencv(run_cli, builds, tmp_path):
    folder = _copy(builds, "cifar20", tmp_path)
    model = onnx.load(str(folder / "model.onnx"))
    for tensor in model.graph.initializer:
        if tensor.name == "fc10.bias":
            tensor.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(tensor) + np.float32(0.01), tensor.name))
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    result = run_cli("validate", folder, "--device", "cpu")
    assert result.code == 1
    assert "FAIL 5 formats" in result.out and "FAIL 6 opencv" in result.out
    assert "PASS 4 counts" in result.out


def test_deploy_and_onnx_disagreeing_fails_the_onnx_check(builds, tmp_path):
    folder = _copy(builds, "cifar20", tmp_path)
    other = build(make_spec("cifar10", 20, num_classes=12))
    (folder / "model.onnx").write_bytes(to_onnx(other, initial_weights(other)).SerializeToString())
    report = validate_folder(folder, "cpu")
    status = {c.name: c.status for c in report.checks}
    assert status["onnx"] == "FAIL" and "fc10" in report.checks[1].figure
    assert status["forward"] == "FAIL"  # 12 classes, the spec says 10


def test_cuda_without_provider_exits_2_with_one_line(run_cli, builds):
    if HAS_CUDA:
        pytest.skip("onnxruntime has CUDA here")
    result = run_cli("validate", builds / "cifar20", "--device", "cuda")
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("error: --device cuda")


def test_all_validates_every_build_with_a_table(run_cli, builds, tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copytree(builds / "bare8", root / "good")
    broken = shutil.copytree(builds / "bare8", root / "nested" / "broken")
    (broken / "deploy.prototxt").write_text(
        (broken / "deploy.prototxt").read_text().replace('type: "ReLU"', 'type: "Relu"', 1))
    result = run_cli("validate", "--all", root, "--device", "cpu")
    assert result.code == 1
    table = result.out[result.out.index("network"):]
    assert "cifar10-resnet8-A" in table and "2 builds: 1 passed, 1 failed" in table
    assert "FAIL 1 prototxt" in result.out  # the failing build's lines are shown
    as_json = run_cli("validate", "--all", root, "--json", "--device", "cpu")
    data = json.loads(as_json.out)
    assert as_json.code == 1 and data["ok"] is False
    assert [b["ok"] for b in data["builds"]] == [True, False]


def test_spec_mode_builds_then_validates(run_cli):
    result = run_cli("validate", "--dataset", "cifar10", "--depth", "8", "--classes", "7",
                     "--device", "cpu")
    assert result.code == 0, result.out
    assert "not one of the paper's networks" in result.out


def test_usage_errors_exit_2(run_cli, builds, tmp_path):
    for args in (["validate"], ["validate", builds / "cifar20", "--depth", "18"],
                 ["validate", tmp_path / "nothing"], ["validate", "--all", tmp_path]):
        result = run_cli(*args)
        assert result.code == 2, args
        assert result.err.startswith("error: ") and result.err.count("\n") == 1


# --------------------------------------------------------------------------- counting


def test_onnx_counts_by_hand():
    graph = infer("t", [ir.Blob("data", (1, 3, 8, 8))], [
        ir.Layer("conv", "Convolution", ("data",), ("conv",),
                 ir.ConvolutionParam(4, (3, 3), (2, 2), (1, 1), bias_term=True)),
        ir.Layer("bn", "BatchNorm", ("conv",), ("conv",), ir.BatchNormParam()),
        ir.Layer("sc", "Scale", ("conv",), ("conv",), ir.ScaleParam(bias_term=True)),
        ir.Layer("fc", "InnerProduct", ("conv",), ("fc",), ir.InnerProductParam(5)),
    ])
    counted = count_onnx(to_onnx(graph, initial_weights(graph)))
    conv_params, bn_params, fc_params = 4 * 3 * 9 + 4, 2 * 4, 5 * 4 * 4 * 4 + 5
    assert counted.params == conv_params + bn_params + fc_params == 445
    assert counted.params_by_op == {"BatchNormalization": 8, "Conv": 112, "Gemm": 325}
    assert counted.macs == 4 * 4 * 4 * (3 * 9) + 64 * 5 == 2048


@pytest.mark.parametrize("spec", [make_spec("cifar10", 20), make_spec("imagenet", 18, "A"),
                                  make_spec("imagenet", 50, "B"),
                                  make_spec("imagenet", 18, "C", input_size=96)],
                         ids=lambda s: s.name)
def test_onnx_counts_equal_ir_counts(spec):
    graph = build(spec)
    counted = count_onnx(to_onnx(graph, initial_weights(graph)))
    ir_counts = count(graph)
    assert (counted.params, counted.macs) == (ir_counts.params, ir_counts.macs)


# --------------------------------------------------------------------------- paper figures


def test_every_paper_network_matches_its_figures():
    seen = 0
    for spec in paper_specs():
        counts = count(build(spec))
        for figure in figures_for(spec):
            value = counts.params if figure.quantity == "parameters" else counts.macs
            assert figure.matches(value), (spec.name, figure, value)
            seen += 1
    assert seen >= 60


def test_paper_figures_precision_and_bias():
    resnet50 = make_spec("imagenet", 50)
    assert resnet50.conv1_bias
    by_source = {(f.quantity, f.source): f for f in figures_for(resnet50)}
    exact = by_source[("parameters", "exact count")]
    assert exact.offset == 64 and exact.matches(25_557_096) and not exact.matches(25_557_032)
    table1 = by_source[("multiply_adds", "Table 1")]
    assert table1.printed == "3.8" and table1.matches(3_857_973_248)  # printed cut off
    assert not table1.matches(3_958_000_000)
    assert Figure("parameters", "0.27", 1e6, "Table 6").matches(269_722)
    assert not Figure("parameters", "0.27", 1e6, "Table 6").matches(280_000)
    assert Figure("multiply_adds", "1.8", 1e9, "Table 1").matches(1_794_800_000)
    assert not Figure("multiply_adds", "1.8", 1e9, "Table 1").matches(1_900_000_000)
    # Table 1's 18/34 figures are the parameter-free nets only
    assert not any(f.source == "Table 1" for f in figures_for(make_spec("imagenet", 34, "B")))
    assert figures_for(make_spec("imagenet", 18, num_classes=10)) == []
    assert not is_paper_network(make_spec("cifar10", 20, input_size=40))
    assert math.isclose(float(figures_for(make_spec("cifar10", 1202))[0].printed), 19.4)


def test_external_data_build_validates(tmp_path):
    folder = tmp_path / "ext"
    write_build(make_spec("cifar10", 8), folder, weights=True, external_data=True)
    assert (folder / "model.onnx.data").is_file()
    report = validate_folder(folder, "cpu")
    assert [c.status for c in report.checks] == ["PASS"] * 6, report.lines()


@pytest.mark.parametrize("change", [{"dataset": "mnist"}, {"depth": 32}, {"stages": [0, 0, 0]},
                                    {"widths": [16]}, {"shortcut": "Z"}])
def test_summary_spec_is_revalidated(builds, tmp_path, change):
    """summary.json's spec goes through make_spec: one netgen would not write is ignored
    (with a note), never built into an IR or held against the paper's figures."""
    folder = _copy(builds, "cifar20", tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    summary["spec"].update(change)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "deploy.prototxt").write_text("garbage {")  # the IR would be rebuilt from the spec
    report = validate_folder(folder, "cpu")
    assert any("summary.json's spec" in note and "ignored" in note for note in report.notes)
    status = {c.name: c.status for c in report.checks}
    assert status["prototxt"] == "FAIL" and status["counts"] == "PASS", report.lines()
    assert "paper figures not applicable" in report.checks[3].figure


def test_spec_from_summary_round_trips():
    from netgen.jobs.validate import spec_from_summary

    for spec in (make_spec("cifar10", 20), make_spec("imagenet", 50, "C", stride_in="3x3"),
                 make_spec("imagenet", stages=(1, 2, 3, 1), block="basic", num_classes=7)):
        assert spec_from_summary({"spec": spec.to_dict()}) == spec
    assert spec_from_summary({"spec": None}) is None and spec_from_summary(None) is None


def test_missing_model_onnx_is_emitted_like_a_build(builds, tmp_path, monkeypatch):
    """The model.onnx validate makes for a folder without one is written by model_files, so
    a net over the threshold gets its tensors in model.onnx.data as a build would."""
    from netgen.onnx import files as onnx_files

    written = []
    real = onnx_files.model_files

    def spy(*args, **kwargs):
        files = real(*args, **kwargs)
        written.append(sorted(files))
        return files

    monkeypatch.setattr(onnx_files, "EXTERNAL_DATA_THRESHOLD", 1000)
    monkeypatch.setattr(onnx_files, "model_files", spy)
    report = validate_folder(_copy(builds, "bare8", tmp_path), "cpu")
    assert [c.status for c in report.checks] == ["PASS"] * 6, report.lines()
    assert any("no model.onnx" in note for note in report.notes)
    assert written == [["model.onnx", "model.onnx.data"]]


def test_any_spec_option_names_a_network(run_cli):
    """--preact alone (no --depth) is a network too: CIFAR-10's pre-activation ResNet-20."""
    result = run_cli("validate", "--dataset", "cifar10", "--preact", "--device", "cpu")
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines()[0].endswith("(cifar10-preresnet20)")
    assert result.out.count("PASS ") == 6
    both = run_cli("validate", "somewhere", "--groups", "32")
    assert both.code == 2 and "not both" in both.err
