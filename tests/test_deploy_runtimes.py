"""The runtimes people deploy to, with their real wheels (the `test` extra installs `mnn` and
`openvino`): `netgen validate --target mnn --target openvino` on a set of names that covers
every unit kind netgen writes, on every real export fixture, and on the forms MNN gets wrong.

Each check compares with ONNX Runtime on the same input (relative to the largest output,
1e-4). MNN runs in a child process through its compiled converter (never the wheel's
`mnnconvert` script, which reaches the network)."""

from __future__ import annotations

import json

import keras_exports
import mxnet_exports
import numpy as np
import onnx
import pytest
import real_exports

from netgen.arch import ir, shapes
from netgen.arch.spec import spec_from_name
from netgen.caffe import caffemodel, prototxt, targets
from netgen.jobs import validate as checks
from netgen.onnx.export import to_onnx
from netgen.runtimes import RuntimeFailed, installed_version

pytestmark = pytest.mark.skipif(
    installed_version("mnn", "MNN", "_tools") is None
    or installed_version("openvino", "openvino") is None,
    reason="MNN and OpenVINO are in the test extra: pip install -e '.[test]'")
BOTH = ("mnn", "openvino")

# Every unit kind netgen writes: ArcFace's IResNet (PReLU, the embedding head), the paper's
# ImageNet nets with options A, B and C and plain,
# the CIFAR nets (A, plain), pre-activation, ResNeXt, Wide, SE in timm's layout and in
# SENet's (-stride1x1-msrapool, SE-ResNeXt -msrapool), ResNet-C/D, the ImageNet-stage CIFAR
# nets (plain and pre-activation).
# The 50-layer ImageNet nets at 224 take 15-50 s each: their units run at 64 x 64 by default
# and at full size with --slow.
FULL_SIZE = ["resnet50-B", "resnext50-32x4d", "wide-resnet50-2", "seresnet50",
             "seresnext50-32x4d-msrapool"]
NAMES = ["iresnet18", "resnet18-A", "resnet18-B", "resnet18-C", "plain18", "resnet50-B-input64",
         "cifar10-resnet20-A", "cifar10-plain20", "cifar10-preresnet164",
         "resnext50-32x4d-input64", "wide-resnet50-2-input64", "seresnet18",
         "seresnet50-stride1x1-msrapool", "seresnext50-32x4d-msrapool-input64", "resnet18d",
         "resnet26d", "resnet50c", "cifar10-resnet18-imagenetstages",
         "cifar10-preresnet18-imagenetstages", "res2net26-26w-4s-input64",
         "resnetrs26-input64"] + [
    pytest.param(name, marks=pytest.mark.slow) for name in FULL_SIZE]


def _statuses(report: checks.Report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def _passes_everywhere(report: checks.Report) -> None:
    failed = [check.line() for check in report.checks if check.status != checks.PASS]
    assert not failed, failed
    assert [c.number for c in report.checks] == [1, 2, 3, 4, 5, 6, 7, 8]
    for check in report.checks[6:]:
        assert "vs ORT: max abs diff / max |output|" in check.figure


def _trained_looking_build(folder, name: str, target: str):
    """`build NAME --target TARGET --weights`, its weights made trained-looking
    (weights.trained_looking: BatchNorms and Scales that are no identities)."""
    from netgen.arch.builder import build
    from netgen.arch.weights import initial_weights, trained_looking
    from netgen.jobs.build import write_build
    from netgen.onnx.files import model_files

    spec = spec_from_name(name)
    write_build(spec, folder, force=True, weights=True, target=target)
    graph = build(spec)
    weights = trained_looking(graph, initial_weights(graph), seed=11)
    (folder / "model.caffemodel").write_bytes(
        caffemodel.caffemodel_bytes(*targets.realize(graph, weights, target)))
    for file, payload in model_files(to_onnx(graph, weights)).items():
        (folder / file).write_bytes(payload)
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_every_unit_kind_runs_in_mnn_and_openvino(tmp_path, name):
    report = checks.validate_folder(_trained_looking_build(tmp_path / "net", name, "mnn"),
                                    "cpu", 1, targets=BOTH)
    _passes_everywhere(report)


def test_a_name_is_built_in_the_mnn_forms_to_be_checked_in_mnn():
    report = checks.validate_spec(spec_from_name("iresnet18"), "cpu", 1, ("mnn",))
    assert "built with --target mnn" in report.notes[0]
    assert any("as trained ones are" in note for note in report.notes)
    assert [c.status for c in report.checks] == ["PASS"] * 7


def test_a_stock_folder_without_weights_is_checked_with_trained_looking_ones(tmp_path, run_cli):
    """generated/ holds no weights: with identity BatchNorms MNN's misread embedding would
    pass; validate makes non-identity ones for the runtime checks."""
    assert run_cli("build", "iresnet18", "--out", tmp_path / "ir").code == 0
    report = checks.validate_folder(tmp_path / "ir", "cpu", 1, targets=("mnn",))
    assert _statuses(report)["mnn"] == "FAIL" and _statuses(report)["opencv"] == "PASS"


def test_iresnet_embedding_read_by_its_blob_name_is_wrong_in_mnn_unless_written_once(tmp_path):
    """ArcFace's embedding: BatchNorm writes `embedding`, its Scale rewrites it in place. In
    MNN the blob name `embedding` stays with the BatchNorm's output; the mnn form's
    `scale_embedding` (also model.onnx's name) is the embedding."""
    stock = checks.validate_folder(_trained_looking_build(tmp_path / "stock", "iresnet18",
                                                          "bvlc"), "cpu", 1, targets=("mnn",))
    assert _statuses(stock)["opencv"] == "PASS"
    assert _statuses(stock)["mnn"] == "FAIL", stock.checks[-1].line()
    mnn = checks.validate_folder(_trained_looking_build(tmp_path / "mnn", "iresnet18", "mnn"),
                                 "cpu", 1, targets=BOTH)
    _passes_everywhere(mnn)


def test_the_stock_se_form_fails_in_mnn_and_says_what_to_do(tmp_path, run_cli):
    folder = tmp_path / "se"
    assert run_cli("build", "seresnet18", "--weights", "--out", folder).code == 0
    result = run_cli("validate", folder, "--target", "mnn", "--json")
    assert result.code == 1
    report = json.loads(result.out)  # MNN's own prints stay out of --json
    mnn = report["checks"][-1]
    assert (mnn["number"], mnn["name"], mnn["status"]) == (7, "mnn", "FAIL")
    assert "MNN's Caffe converter failed" in mnn["figure"]
    assert "w0->blobs_size() >= 1" in mnn["figure"]
    assert "--target mnn writes the forms MNN converts" in mnn["figure"]
    assert [c["status"] for c in report["checks"][:6]] == ["PASS"] * 6


def test_a_build_folder_in_the_mnn_forms_without_weights_is_checked(tmp_path, run_cli):
    """generated/ commits no caffemodel: validate makes one, the broadcasts' ones included."""
    folder = tmp_path / "se"
    assert run_cli("build", "seresnet18", "--target", "mnn", "--out", folder).code == 0
    result = run_cli("validate", folder, "--target", "mnn", "--target", "openvino")
    assert result.code == 0, result.out
    assert "PASS 7 mnn: MNN" in result.out and "PASS 8 openvino: OpenVINO" in result.out


def _embedding_folder(tmp_path, target: str, activation: str):
    """A face-recognition-shaped net: conv, BN, Scale, the activation, fc 16, then a
    BatchNorm + Scale on the 2-D embedding (a BatchNorm1d), with trained-looking weights."""
    act = ir.PReLUParam() if activation == "PReLU" else ir.ReLUParam()
    layers = [
        ir.Layer("conv", "Convolution", ("data",), ("conv",),
                 ir.ConvolutionParam(16, (3, 3), pad=(1, 1), bias_term=False)),
        ir.Layer("bn", "BatchNorm", ("conv",), ("conv",), ir.BatchNormParam(True)),
        ir.Layer("scale", "Scale", ("conv",), ("conv",), ir.ScaleParam(bias_term=True)),
        ir.Layer("act", activation, ("conv",), ("conv",), act),
        ir.Layer("fc", "InnerProduct", ("conv",), ("fc",), ir.InnerProductParam(16)),
        ir.Layer("feat_bn", "BatchNorm", ("fc",), ("features",), ir.BatchNormParam(True)),
        ir.Layer("feat_scale", "Scale", ("features",), ("features",),
                 ir.ScaleParam(bias_term=True)),
    ]
    graph = shapes.infer("embedding", (ir.Blob("data", (1, 3, 16, 16)),), layers)
    rng = np.random.default_rng(5)
    weights = {}
    for layer in graph.layers:
        if layer.type == "BatchNorm":
            c = layer.blob_shapes[0]
            weights[layer.name] = [rng.normal(0, 0.1, c).astype(np.float32),
                                   rng.uniform(0.5, 1.5, c).astype(np.float32),
                                   np.ones(1, np.float32)]
        elif layer.type == "PReLU":  # distinct slopes, as trained ones are
            weights[layer.name] = [rng.uniform(0.05, 0.5, layer.blob_shapes[0]).astype(np.float32)]
        elif layer.blob_shapes:
            weights[layer.name] = [(rng.standard_normal(s) * 0.3).astype(np.float32)
                                   for s in layer.blob_shapes]
    folder = tmp_path / f"{target}-{activation}"
    folder.mkdir()
    realized, realized_weights = targets.realize(graph, weights, target)
    (folder / "deploy.prototxt").write_text(prototxt.render_deploy(realized))
    (folder / "model.caffemodel").write_bytes(caffemodel.caffemodel_bytes(realized,
                                                                          realized_weights))
    (folder / "model.onnx").write_bytes(to_onnx(graph, weights).SerializeToString())
    return folder


@pytest.mark.parametrize("activation", ["PReLU", "ReLU"])
def test_an_output_written_in_place_is_another_tensor_in_mnn_and_the_mnn_form_is_right(
        tmp_path, activation):
    """Found by experiment (MNN 3.6): the embedding's Scale, in place on `features`, leaves
    that name with the BatchNorm's output in MNN, with PReLU or ReLU before alike. The mnn
    form (nothing in place) is exact."""
    stock = checks.validate_folder(_embedding_folder(tmp_path, "bvlc", activation), "cpu", 2,
                                   targets=("mnn",))
    assert _statuses(stock)["opencv"] == "PASS"  # right by Caffe's definition
    assert _statuses(stock)["mnn"] == "FAIL"
    assert float(stock.checks[-1].figure.split("max |output| ")[1].split()[0]) > 1e-2
    mnn = checks.validate_folder(_embedding_folder(tmp_path, "mnn", activation), "cpu", 2,
                                 targets=BOTH)
    assert _statuses(mnn)["mnn"] == _statuses(mnn)["openvino"] == _statuses(mnn)["opencv"] \
        == "PASS"


def test_prelu_as_caffe_writes_it_is_right_in_mnn(tmp_path):
    """The issue reported PReLU wrong in MNN; measured, it is right (per channel, in place,
    after a Scale, distinct slopes): what was wrong was reading a blob that a layer after it
    rewrote in place."""
    folder = _embedding_folder(tmp_path, "bvlc", "PReLU")
    text = (folder / "deploy.prototxt").read_text()
    cut = text.index('name: "feat_bn"')
    (folder / "deploy.prototxt").write_text(text[:text.rindex("layer {", 0, cut)])
    onnx_model = onnx.load(str(folder / "model.onnx"))
    keep = [node for node in onnx_model.graph.node if node.name not in ("feat_bn", "feat_scale")]
    del onnx_model.graph.node[:]
    onnx_model.graph.node.extend(keep)
    del onnx_model.graph.output[:]
    onnx_model.graph.output.extend([onnx.helper.make_tensor_value_info(
        keep[-1].output[0], onnx.TensorProto.FLOAT, ["N", 16])])
    onnx.save(onnx_model, str(folder / "model.onnx"))
    report = checks.validate_folder(folder, "cpu", 2, targets=("mnn",))
    assert "PReLU" in (folder / "deploy.prototxt").read_text()
    assert _statuses(report)["mnn"] == "PASS", report.checks[-1].line()


def test_a_missing_runtime_is_a_skip_naming_the_extra(monkeypatch):
    from netgen import runtimes

    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda name: None)
    report = checks.validate_spec(spec_from_name("cifar10-resnet20-A"), "cpu", 1, BOTH)
    assert [c.line() for c in report.checks[6:]] == [
        "SKIP 7 mnn: MNN is not installed; pip install 'netgen[mnn]'",
        "SKIP 8 openvino: OpenVINO is not installed; pip install 'netgen[openvino]'"]
    assert report.ok


def test_mnn_errors_come_back_as_one_line(tmp_path):
    from netgen.runtimes import mnn

    (tmp_path / "deploy.prototxt").write_text('name: "x"\ninput: "data"\ninput_dim: 1\n'
                                              'input_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
                                              'layer { name: "s" type: "Scale" bottom: "data" '
                                              'bottom: "data" top: "y" }\n')
    (tmp_path / "model.caffemodel").write_bytes(b"")
    with pytest.raises(RuntimeFailed) as caught:
        mnn.run_caffe(tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel",
                      {"data": np.zeros((1, 3, 8, 8), np.float32)}, ["y"], tmp_path / "w")
    message = str(caught.value)
    assert message.startswith("MNN's Caffe converter failed") and "\n" not in message
    assert "[" not in message.split(": ", 1)[1][:3]  # the log's clock time is cut


# ----------------------------------------------------------------- other people's files

# Measured, not netgen's: the refilled resnest50d at validate's N(0, 1) input is beyond
# float32 (its split-attention logits grow with activations of 2,600): ONNX Runtime on the
# source with graph optimisations on and off differs by 2.6e-3, and OpenCV, OpenVINO, MNN and
# the ONNX written back by 1.3e-4 to 1.5e-2. At N(0, 0.1^2) they agree to 1e-5
# (tests/test_resnest_real_exports.py).
# Refilled nets that are ill-conditioned in float32 at validate's N(0, 1) input: ONNX Runtime
# with and without its graph optimisations already differs on the file itself by more than
# validate's 1e-4 (resnest50d 2.6e-3, ecaresnet101d 4.7e-2; skresnet34's TorchScript file:
# OpenVINO and ORT 1.4e-4). Their conversions are held to 1e-4 on smaller inputs by
# test_resnest_real_exports, test_eca_real_exports and test_sk_real_exports.
ILL_CONDITIONED = {"timm_resnest50d.torchscript.onnx", "timm_resnest50d.dynamo.onnx",
                   "timm_ecaresnet101d.torchscript.onnx", "timm_ecaresnet101d.dynamo.onnx",
                   "timm_skresnet34.torchscript.onnx"}


def _fixtures() -> list:
    """(id, loader) of every real export fixture: torch (TorchScript and dynamo exporters),
    Keras (torch and TensorFlow backends, channels-last), MXNet Gluon."""
    # the deepest, and timm's 224 x 224 files from the second exporter: 13-20 s each
    slow = ("resnet101", "resnet152")
    found = []
    for record in real_exports.manifest():
        marks = [pytest.mark.slow] if any(s in record["file"] for s in slow) or (
            record["file"].startswith("timm_") and ".dynamo." in record["file"]) else []
        if record["file"] in ILL_CONDITIONED:  # 15 s each to fail: with --slow
            marks = [pytest.mark.slow, pytest.mark.xfail(
                strict=True, reason="float32 conditioning of the refilled net at N(0, 1)")]
        found.append(pytest.param(record["file"], marks=marks, id=record["file"]))
    found += [pytest.param(f"keras:{name}", id=f"keras-{name}") for name in keras_exports.FILES]
    found += [pytest.param(f"mxnet:{name}", id=f"mxnet-{name}") for name in mxnet_exports.NAMES]
    return found


def _save(fixture: str, folder) -> object:
    kind, _, name = fixture.partition(":")
    path = folder / f"{name or kind}.onnx"
    if kind == "keras":
        return keras_exports.save(name, path)
    if kind == "mxnet":
        return mxnet_exports.save(name, path)
    onnx.save(real_exports.load(fixture), str(path))
    return path


@pytest.mark.parametrize("fixture", _fixtures())
def test_every_real_export_runs_in_mnn_and_openvino(tmp_path, fixture):
    """validate FILE --target mnn --target openvino: the Caffe files `convert --target mnn`
    writes from the export run in OpenCV and MNN, model.onnx in OpenVINO, all like ORT."""
    report = checks.validate_file(_save(fixture, tmp_path), "cpu", 1, None, BOTH)
    _passes_everywhere(report)  # the file's own checks (counts, formats) too


def test_like_with_target_mnn_carries_timm_weights_into_files_mnn_runs(tmp_path, run_cli):
    source = tmp_path / "timm_seresnet18.onnx"
    onnx.save(real_exports.load("timm_seresnet18.torchscript.onnx"), str(source))
    out = tmp_path / "like"
    result = run_cli("convert", source, "--like", "seresnet18", "--target", "mnn", "-o", out)
    assert result.code == 0, result.err
    assert "Deconvolution" in (out / "deploy.prototxt").read_text()
    report = checks.validate_folder(out, "cpu", 1, targets=BOTH)
    assert all(c.status == checks.PASS for c in report.checks[4:]), \
        [c.line() for c in report.checks]
    # and the mapped weights are the export's: ORT on model.onnx = ORT on the export
    from netgen.onnx.runtime import create_session, random_batch

    x = random_batch([1, 3, 224, 224], 3)
    want = create_session(onnx.load(str(source)), device="cpu").run_list(x)[0]
    got = create_session(onnx.load(str(out / "model.onnx")), device="cpu").run_list(x)[0]
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4
