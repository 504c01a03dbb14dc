"""ArcFace's face-recognition IResNets (insightface's iresnet18..200): built, named, imported.

The references are insightface's own code (recognition/arcface_torch/backbones/iresnet.py):
torch's parameter counts of its five nets, its layer order (BN, 3x3 conv, BN, PReLU, 3x3
conv with the stride, BN; the sum left alone), and real exports of it
(tests/fixtures/exports/insightface_*, made by tests/fixtures/make_exports.py as
insightface's torch2onnx.py and the dynamo exporter write them).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import real_exports
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import IRESNET_NAMES, make_spec, spec_from_name
from netgen.caffe import proto as caffe_proto
from netgen.jobs.identify import identify

# torch's sum(p.numel() for p in model.parameters()) of insightface's iresnetN (the
# BatchNorm1d weight fixed at 1 included), and its blocks per stage.
TORCH_COUNTS = {"iresnet18": 24_025_600, "iresnet34": 34_139_328, "iresnet50": 43_590_848,
                "iresnet100": 65_156_160, "iresnet200": 118_833_920}
LAYOUTS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3),
           "iresnet100": (3, 13, 30, 3), "iresnet200": (6, 26, 60, 6)}
# multiply-adds (conv + fc): insightface quotes r18 2.6G, r50 6.3G, r100 12.1G, r200 23.5G
MACS = {"iresnet18": 2_609_954_816, "iresnet50": 6_309_330_944, "iresnet100": 12_089_606_144}
FIXTURES = {f"insightface_{n}.{tag}.onnx": n for n in ("iresnet18", "iresnet50", "iresnet100")
            for tag in ("torch2onnx", "dynamo")}


@pytest.mark.parametrize("name", IRESNET_NAMES)
def test_counts_are_torchs(name):
    spec = spec_from_name(name)
    graph = build(spec)
    counts = count(graph)
    assert counts.params == TORCH_COUNTS[name]
    assert spec.stages == LAYOUTS[name] and spec.iresnet and spec.input_size == 112
    assert [s.blocks for s in counts.stages] == [0, *LAYOUTS[name], 0]
    if name in MACS:
        assert counts.macs == MACS[name]
    assert graph.outputs == ("embedding",)
    assert graph.layer("scale_embedding").top_shapes[0] == (1, 512)


def test_block_stem_and_head_are_insightfaces():
    graph = build(spec_from_name("iresnet18"))
    names = [layer.name for layer in graph.layers]
    stem = [(l.name, l.type) for l in graph.layers[:4]]
    assert stem == [("conv1", "Convolution"), ("bn_conv1", "BatchNorm"),
                    ("scale_conv1", "Scale"), ("conv1_prelu", "PReLU")]
    conv1 = graph.layer("conv1").param
    assert (conv1.kernel, conv1.stride, conv1.num_output, conv1.bias_term) == ((3, 3), (1, 1), 64,
                                                                               False)
    assert "pool1" not in names
    block = [(l.name, l.type) for l in graph.layers
             if l.name.startswith(("res2a", "bn2a", "scale2a"))]
    assert block == [
        ("res2a_branch1", "Convolution"), ("bn2a_branch1", "BatchNorm"),
        ("scale2a_branch1", "Scale"),
        ("bn2a_branch2", "BatchNorm"), ("scale2a_branch2", "Scale"),
        ("res2a_branch2a", "Convolution"), ("bn2a_branch2a", "BatchNorm"),
        ("scale2a_branch2a", "Scale"), ("res2a_branch2a_prelu", "PReLU"),
        ("res2a_branch2b", "Convolution"), ("bn2a_branch2b", "BatchNorm"),
        ("scale2a_branch2b", "Scale"), ("res2a", "Eltwise")]
    # the first stage subsamples too, on the second conv and on the projection
    assert graph.layer("res2a_branch2a").param.stride == (1, 1)
    assert graph.layer("res2a_branch2b").param.stride == (2, 2)
    assert graph.layer("res2a_branch1").param.stride == (2, 2)
    assert graph.layer("res2a").top_shapes[0] == (1, 64, 56, 56)
    assert "res2b_branch1" not in names and "res2a_relu" not in names  # nothing after the sum
    assert graph.layer("bn2a_branch2").tops == ("bn2a_branch2",)  # the shortcut reads the input
    head = [(l.name, l.type) for l in graph.layers[-5:]]
    assert head == [("bn_head", "BatchNorm"), ("scale_head", "Scale"),
                    ("fc512", "InnerProduct"), ("bn_embedding", "BatchNorm"),
                    ("scale_embedding", "Scale")]
    assert graph.layer("fc512").blob_shapes == ((512, 25_088), (512,))
    assert sum(1 for l in graph.layers if l.type == "PReLU") == 9


def test_names_and_options():
    assert spec_from_name("iresnet50") == make_spec(iresnet=True, depth=50)
    assert make_spec(iresnet=True, stages=(6, 26, 60, 6)).name == "iresnet200"
    assert make_spec(iresnet=True, stages=(2, 2, 3, 2)).name == "iresnet20-2-2-3-2-basic"
    assert make_spec(iresnet=True, depth=50, num_classes=10_000).name == "iresnet50-classes10000"
    spec = spec_from_name("iresnet34-input128")
    assert spec.input_size == 128 and build(spec).layer("fc512").blob_shapes[0] == (512, 32_768)
    assert spec_from_name("iresnet18").to_dict()["iresnet"] is True


@pytest.mark.parametrize("args, words", [
    (["--iresnet", "--depth", "101"], "IResNet depth 101 is not one of insightface's"),
    (["--iresnet", "--preact"], "does not take --preact"),
    (["--iresnet", "--dataset", "cifar10"], "does not take --dataset cifar10"),
    (["--iresnet", "--se", "16"], "does not take --se"),
])
def test_bad_options_one_line_exit_2_nothing_written(tmp_path, run_cli, args, words):
    out = tmp_path / "out"
    result = run_cli("build", *args, "--out", out)
    assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists()


def test_build_files_train_with_a_plain_identity_classifier(tmp_path, run_cli):
    out = tmp_path / "iresnet50"
    result = run_cli("build", "--iresnet", "--depth", "50", "--out", out)
    assert result.code == 0, result.err
    assert (out / "deploy.prototxt").read_bytes() == (
        _build_bytes(tmp_path, run_cli, "iresnet50"))
    train = caffe_proto.parse_net((out / "train_val.prototxt").read_text(), "train_val")
    layers = {layer.name: layer for layer in train.layer}
    fc = layers["fc_identities"]
    assert fc.type == "InnerProduct" and list(fc.bottom) == ["embedding"]
    assert fc.inner_product_param.num_output == 93_431
    assert list(layers["loss"].bottom) == ["fc_identities", "label"]
    assert layers["loss"].type == "SoftmaxWithLoss"
    assert [p.lr_mult for p in layers["scale_embedding"].param] == [0, 1]  # gamma fixed at 1
    assert [p.lr_mult for p in layers["scale_head"].param] == [1, 1]
    assert layers["res2a_branch2a_prelu"].param[0].decay_mult == 0
    transform = [l for l in train.layer if l.type == "Data"][0].transform_param
    assert transform.crop_size == 112 and list(transform.mean_value) == [127.5] * 3
    assert transform.scale == pytest.approx(1 / 127.5)
    solver = (out / "solver.prototxt").read_text()
    for line in ('lr_policy: "poly"', "power: 2", "max_iter: 101163", "weight_decay: 0.0005",
                 "iter_size: 8", "base_lr: 0.1"):
        assert line in solver.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == TORCH_COUNTS["iresnet50"]
    assert summary["spec"]["embedding"] == 512 and summary["outputs"] == ["embedding"]
    classes = run_cli("build", "iresnet18-classes85742", "--out", tmp_path / "c")
    assert classes.code == 0, classes.err
    assert "num_output: 85742" in (tmp_path / "c" / "train_val.prototxt").read_text()


def _build_bytes(tmp_path, run_cli, name: str) -> bytes:
    out = tmp_path / f"named-{name}"
    assert run_cli("build", name, "--out", out).code == 0
    return (out / "deploy.prototxt").read_bytes()


def test_validate_passes_every_check(run_cli):
    pytest.importorskip("cv2")
    result = run_cli("validate", "iresnet18")
    assert result.code == 0, result.out + result.err
    assert result.out.count("PASS") == 6
    assert "24,025,600 parameters" in result.out and "[1, 512]" in result.out


def test_listed_after_the_other_sections(run_cli):
    rows = json.loads(run_cli("list", "--json").out)
    faces = [r for r in rows if r["section"] == "faces"]
    assert [r["name"] for r in faces] == list(IRESNET_NAMES)
    assert [r["parameters"] for r in faces] == [TORCH_COUNTS[n] for n in IRESNET_NAMES]
    assert rows[-1]["name"] == "iresnet200" and faces[0]["dataset"] == "faces"


# --------------------------------------------------------------------------- real exports


def test_fixtures_are_torch2onnx_and_dynamo_exports():
    for file, name in FIXTURES.items():
        record = real_exports.record(file)
        assert record["parameters"] == TORCH_COUNTS[name] and record["input_shape"] == [
            1, 3, 112, 112]
        model = onnx.load(str(real_exports.path(file)))
        if "torch2onnx" in file:  # torch2onnx.py's settings
            assert record["opset"] == 11 and record["input_name"] == "data"
            dims = model.graph.input[0].type.tensor_type.shape.dim
            assert dims[0].dim_param == "None"
            assert not {t.name for t in model.graph.initializer} & {
                i.name for i in model.graph.input}  # keep_initializers_as_inputs=False
        else:
            assert record["exporter"] == "dynamo"
        assert record["op_counts"]["PRelu"] == sum(LAYOUTS[name]) + 1


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insightface")
    paths = {}
    for file in FIXTURES:
        paths[file] = folder / file
        onnx.save(real_exports.load(file), paths[file])
    return paths


@pytest.mark.parametrize("file", list(FIXTURES))
def test_identify_and_diff_name_the_exports(fixture_files, run_cli, file):
    name = FIXTURES[file]
    found = identify(str(fixture_files[file]))
    assert found.equivalent and found.name == name and found.findings == []
    result = run_cli("identify", fixture_files[file])
    assert result.code == 0
    assert f"build: netgen build --iresnet --depth {name[len('iresnet'):]}" in result.out
    result = run_cli("diff", fixture_files[file], name)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out
    folded = ("BatchNorm after the fc: B has one (fc512), A has it folded into the fc (the "
              "dynamo exporter's Gemm)")
    assert (folded in result.out) == ("dynamo" in file)


def test_another_depth_differs_in_its_blocks(fixture_files, run_cli):
    result = run_cli("diff", fixture_files["insightface_iresnet100.torch2onnx.onnx"], "iresnet50")
    assert result.code == 1
    assert "blocks: A 49 basic blocks 3-13-30-3, depth 100 | B 24 basic blocks 3-4-14-3" in result.out


@pytest.mark.parametrize("file", ["insightface_iresnet50.torch2onnx.onnx",
                                  "insightface_iresnet50.dynamo.onnx",
                                  "insightface_iresnet18.dynamo.onnx"])
def test_convert_like_carries_the_weights_exactly(fixture_files, run_cli, tmp_path, file):
    """OpenCV on the Caffe files and ONNX Runtime on netgen's ONNX, against ONNX Runtime on
    the export, on one batch: within 1e-4 of the largest output."""
    cv2 = pytest.importorskip("cv2")
    name = FIXTURES[file]
    out = tmp_path / "like"
    result = run_cli("convert", fixture_files[file], "--like", name, "-o", out)
    assert result.code == 0, result.err
    assert (out / "deploy.prototxt").read_bytes() == _build_bytes(tmp_path, run_cli, name)
    x = np.random.default_rng(0).standard_normal((2, 3, 112, 112)).astype(np.float32)
    source = ort.InferenceSession(str(fixture_files[file]))
    feed = source.get_inputs()[0].name
    want = np.concatenate([source.run(None, {feed: x[i:i + 1]})[0] for i in range(2)])
    net = cv2.dnn.readNetFromCaffe(str(out / "deploy.prototxt"), str(out / "model.caffemodel"))
    net.setInput(x)
    got = net.forward()
    assert got.shape == (2, 512)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
    ours = ort.InferenceSession(str(out / "model.onnx"))
    back = ours.run(None, {ours.get_inputs()[0].name: x})[0]
    assert np.abs(back - want).max() / np.abs(want).max() < 1e-4


# --------------------------------------------------------------------------- in the paper's words


def test_diff_draw_and_summary_speak_of_the_improved_block(tmp_path, run_cli):
    result = run_cli("diff", "iresnet18", "cifar10-preresnet18-imagenetstages-input112")
    assert result.code == 1
    assert ("wiring of all 8 blocks: A improved (BN-conv-BN-PReLU-conv-BN, nothing after the "
            "sum: ArcFace's IResNet) | B pre-activation") in result.out
    assert "stem: A 3x3 conv 64, PReLU | B 3x3 conv 64" in result.out
    assert "head: A BN, fc 512, BN | B global ave pool, fc 10" in result.out
    text = run_cli("summary", "iresnet50").out
    assert text.startswith("iresnet50: 50 layers, improved basic blocks (BN, 3x3 conv, BN, "
                           "PReLU, 3x3 conv, BN; nothing after the sum), 3x3 stem with BN and "
                           "PReLU, embedding head (BN, fc 512, BN)")
    assert "43,590,848" in text
    svg = tmp_path / "ir.svg"
    assert run_cli("draw", "iresnet18", "-o", svg).code == 0
    drawing = svg.read_text()
    assert drawing.count(">PReLU<") == 9 and ">BN, fc 512, BN<" in drawing
    assert ">3x3 conv, 64, /2<" in drawing and "IResNet (ArcFace)" in drawing
    assert "Pre-activation:" not in drawing
