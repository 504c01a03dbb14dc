"""The ImageNet stem's pool1 as architecture: MSRA's (3x3/2, pad 0, rounding up) or
torchvision's (pad 1, rounding down), ArchSpec.stem_pool, --stem-pool, -torchpool/-msrapool.

Numbers are checked against a numpy max pooling written here (windows from -pad + i*stride,
padding never the maximum), against ONNX Runtime on torchvision-shaped exports
(tests/torchvision_exports.py) and against OpenCV's Caffe importer.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from torchvision_exports import random_input, reference_forward, relative_error, softmax, \
    torchvision_resnet

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec, spec_from_name
from netgen.errors import NetgenError
from netgen.jobs.build import write_build
from netgen.jobs.diff import diff
from netgen.onnx.runtime import create_session

cv2 = pytest.importorskip("cv2")

TOLERANCE = 1e-4


def max_pool(x: np.ndarray, pad: int, floor: bool) -> np.ndarray:
    """3x3 stride-2 max pooling of NCHW `x`, output size rounded down or up (Caffe's rule:
    no window may start inside the bottom/right padding)."""
    n, c, h, w = x.shape

    def out(size: int) -> int:
        span = size + 2 * pad - 3
        o = span // 2 + 1 if floor else -(-span // 2) + 1
        return o - 1 if (not floor and pad and (o - 1) * 2 >= size + pad) else o

    oh, ow = out(h), out(w)
    padded = np.full((n, c, h + 2 * pad + 2, w + 2 * pad + 2), -np.inf, x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    result = np.empty((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            result[:, :, i, j] = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
    return result


# ------------------------------------------------------------------------------ spec, names

def test_defaults_msra_for_the_paper_torchvision_for_the_family_none_on_cifar():
    assert make_spec("imagenet", 18).stem_pool == "msra"
    assert make_spec("imagenet", 50, plain=True).stem_pool == "msra"
    for name in ("resnext50-32x4d", "wide-resnet50-2", "preresnet200", "resnext101-64x4d"):
        assert spec_from_name(name).stem_pool == "torchvision", name
    assert make_spec("cifar10", 20).stem_pool is None
    assert spec_from_name("cifar10-preresnet164").stem_pool is None


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(depth=18, stem_pool="torchvision"), "resnet18-B-torchpool"),
    (dict(depth=50, stride_in="3x3", conv1_bias=False, stem_pool="torchvision"),
     "resnet50-B-stride3x3-noconv1bias-torchpool"),
    (dict(depth=34, plain=True, stem_pool="torchvision"), "plain34-torchpool"),
    (dict(depth=18, shortcut="A", num_classes=100, input_size=112, stem_pool="torchvision"),
     "resnet18-A-torchpool-classes100-input112"),
    (dict(depth=50, groups=32, width_per_group=4, stem_pool="msra"), "resnext50-32x4d-msrapool"),
    (dict(depth=50, width_factor=2, stem_pool="msra", input_size=64),
     "wide-resnet50-2-msrapool-input64"),
    (dict(depth=200, preact=True, stem_pool="msra"), "preresnet200-msrapool"),
    (dict(depth=18, stem_pool="msra"), "resnet18-B"),
    (dict(depth=50, groups=32, width_per_group=4, stem_pool="torchvision"), "resnext50-32x4d"),
])
def test_the_other_stem_is_a_name_suffix_that_parses_back(kwargs, name):
    spec = make_spec(**kwargs)
    assert spec.name == name
    assert spec_from_name(name) == spec


@pytest.mark.parametrize(("name", "message"), [
    ("resnext50-32x4d-torchpool", "did you mean 'resnext50-32x4d'"),
    ("resnet18-B-msrapool", "did you mean 'resnet18-B'"),
    ("resnet50-B-torchpool-stride3x3", "not a network name"),
    ("cifar10-resnet20-A-torchpool", "CIFAR-10 nets have no pool1"),
])
def test_names_with_a_stem_suffix_are_canonical(name, message):
    with pytest.raises(NetgenError, match=message):
        spec_from_name(name)


def test_summary_json_records_the_stem_only_where_it_is_not_msras():
    assert "stem_pool" not in make_spec("imagenet", 50).to_dict()
    assert "stem_pool" not in make_spec("cifar10", 20).to_dict()
    assert "stem_pool" not in spec_from_name("cifar10-preresnet164").to_dict()
    assert spec_from_name("resnet18-B-torchpool").to_dict()["stem_pool"] == "torchvision"
    assert spec_from_name("resnext50-32x4d").to_dict()["stem_pool"] == "torchvision"
    assert spec_from_name("resnext50-32x4d-msrapool").to_dict()["stem_pool"] == "msra"


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "cifar10", "--stem-pool", "torchvision"],
     "error: --stem-pool applies to ImageNet nets only: CIFAR-10 nets have no pool1 (their "
     "stem is conv1 alone); drop --stem-pool"),
    (["--dataset", "cifar10", "--preact", "--depth", "164", "--stem-pool", "msra"],
     "CIFAR-10 nets have no pool1"),
    (["--stem-pool", "caffe"], "error: unknown stem pooling 'caffe'; allowed: msra, torchvision"),
])
def test_bad_stem_pool_options_exit_2_with_one_line(run_cli, tmp_path, args, message):
    for command in (["build", "--out", str(tmp_path / "x")], ["summary"], ["validate"]):
        result = run_cli(*command, *args)
        assert result.code == 2, (command, result.out)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "x").exists()


def test_summary_and_list_say_which_stem(run_cli):
    first = run_cli("summary", "--depth", "18", "--stem-pool", "torchvision").out.splitlines()[0]
    assert first == ("resnet18-B-torchpool: 18 layers, basic blocks, shortcut B, input 224x224, "
                     "pool1 pad 1 rounding down (torchvision's stem)")
    assert run_cli("summary", "--depth", "18").out.splitlines()[0].endswith(
        "pool1 pad 0 rounding up (MSRA's stem)")
    assert "pool1" not in run_cli("summary", "--dataset", "cifar10").out.splitlines()[0]
    rows = {r["name"]: r for r in json.loads(run_cli("list", "--json").out)}
    assert rows["resnet50-B"]["stem_pool"] == "msra"
    assert rows["resnext50-32x4d"]["stem_pool"] == "torchvision"
    assert rows["cifar10-resnet20-A"]["stem_pool"] is None


# ------------------------------------------------------------------------------ the graph

@pytest.mark.parametrize(("name", "param", "size"), [
    ("resnet18-B", ir.PoolingParam("MAX", (3, 3), (2, 2)), 56),
    ("resnet18-B-torchpool", ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1), round_mode="FLOOR"),
     56),
    ("resnet18-B-torchpool-input64",
     ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1), round_mode="FLOOR"), 16),
    ("resnet18-B-input64", ir.PoolingParam("MAX", (3, 3), (2, 2)), 16),
    # conv1 gives 113x113: rounding either way gives 57, so FLOOR is not written (one IR)
    ("resnet18-B-torchpool-input226", ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1)), 57),
    ("resnet18-B-input226", ir.PoolingParam("MAX", (3, 3), (2, 2)), 56),
    ("resnext50-32x4d", ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1), round_mode="FLOOR"), 56),
])
def test_pool1_from_the_spec(name, param, size):
    graph = build(spec_from_name(name))
    pool1 = graph.layer("pool1")
    assert pool1.param == param
    assert pool1.top_shapes == ((1, 64, size, size),)
    assert graph.layer("res2a_branch2a").bottoms == ("pool1",)


@pytest.mark.parametrize("name", ["resnet18-B", "resnet50-B", "resnet152-C", "plain34"])
def test_counts_do_not_depend_on_the_stem(name):
    a, b = count(build(spec_from_name(name))), count(build(spec_from_name(name + "-torchpool")))
    assert (a.params, a.macs) == (b.params, b.macs)


def test_diff_of_the_two_stems_is_one_finding():
    result = diff("resnet18-B", "resnet18-B-torchpool")
    assert not result.equivalent
    assert [f["text"] for f in result.findings] == [
        "pool1: A pads 0 and rounds up (MSRA's), B pads 1 and rounds down (torchvision's stem)"]
    assert diff("resnext50-32x4d", "resnext50-32x4d-msrapool").findings[0]["kind"] == "stem_pool"
    assert diff("resnet18-B-torchpool", "resnet18-B-torchpool").equivalent


# ------------------------------------------------------------------------------ the files

@pytest.fixture(scope="module")
def torchpool_build(tmp_path_factory):
    """`netgen build --depth 18 --stem-pool torchvision --input-size 64 --weights`."""
    from netgen.commands.cli import main

    folder = tmp_path_factory.mktemp("stem") / "b"
    assert main(["build", "--depth", "18", "--stem-pool", "torchvision", "--input-size", "64",
                 "--weights", "--seed", "3", "--out", str(folder)]) == 0
    return folder


def test_build_writes_the_crop_form_with_pool1_as_the_blob(torchpool_build):
    for file in ("deploy.prototxt", "train_val.prototxt"):
        text = (torchpool_build / file).read_text()
        assert text.count('type: "Crop"') == 1, file
        assert text.count('top: "pool1"\n') == 1  # the Crop's: res2a reads pool1 as before
        assert 'name: "pool1"\n  type: "Pooling"\n  bottom: "conv1"\n  top: "pool1_ceil"' in text
        assert "pad: 1" in text.split('top: "pool1_ceil"')[1].split("}")[0]
    summary = json.loads((torchpool_build / "summary.json").read_text())
    assert summary["spec"]["stem_pool"] == "torchvision"
    assert summary["spec"]["name"] == "resnet18-B-torchpool-input64"
    model = onnx.load(str(torchpool_build / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    [pool] = [n for n in model.graph.node if n.op_type == "MaxPool"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
    assert attrs == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                     "ceil_mode": 0}


def test_pool1_computes_torchvisions_windows_in_ort_and_opencv(torchpool_build):
    model = onnx.load(str(torchpool_build / "model.onnx"))
    [pool] = [n for n in model.graph.node if n.op_type == "MaxPool"]
    for name in (pool.input[0], pool.output[0]):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    batch = np.random.default_rng(7).standard_normal((2, 3, 64, 64)).astype(np.float32)
    outputs = create_session(model.SerializeToString(), device="cpu").run_list(batch)
    before, after = outputs[-2], outputs[-1]
    want = max_pool(before, pad=1, floor=True)
    assert after.shape == want.shape == (2, 64, 16, 16)
    np.testing.assert_array_equal(after, want)
    assert not np.array_equal(want, max_pool(before, pad=0, floor=False)[:, :, :16, :16])
    net = cv2.dnn.readNetFromCaffe(str(torchpool_build / "deploy.prototxt"),
                                   str(torchpool_build / "model.caffemodel"))
    net.setInput(batch)
    cropped = net.forward("pool1_floor_crop")
    assert cropped.shape == (2, 64, 16, 16)
    assert relative_error(cropped, want) <= TOLERANCE


def test_validate_passes_all_six_checks(run_cli, torchpool_build):
    result = run_cli("validate", torchpool_build)
    assert result.code == 0, result.out
    assert [line[:6] for line in result.out.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")] \
        == [f"PASS {n}" for n in range(1, 7)]
    assert "cv2.dnn" in result.out


def test_builds_are_deterministic_and_drawable(tmp_path, run_cli, torchpool_build):
    from netgen.commands.cli import main

    again = tmp_path / "again"
    assert main(["build", "--depth", "18", "--stem-pool", "torchvision", "--input-size", "64",
                 "--weights", "--seed", "3", "--out", str(again)]) == 0
    for file in sorted(p.name for p in torchpool_build.iterdir()):
        assert (again / file).read_bytes() == (torchpool_build / file).read_bytes(), file
    result = run_cli("draw", torchpool_build, "resnet18-B-torchpool", "-o", tmp_path / "d.svg")
    assert result.code == 0, result.err
    assert (tmp_path / "d.svg").read_text().startswith("<svg")


def test_the_build_folder_diffs_like_its_name_and_unlike_msras(torchpool_build):
    """Caffe's crop form of the floor pooling reads back as the one floor pooling."""
    folder = str(torchpool_build / "deploy.prototxt")
    assert diff(folder, "resnet18-B-torchpool-input64").equivalent
    assert [f["kind"] for f in diff(folder, "resnet18-B-input64").findings] == ["stem_pool"]


def test_readme_recipe_converts_torchvision_resnet18_exactly(tmp_path, run_cli):
    """`netgen convert resnet18.onnx --like resnet18-B-torchpool -o resnet18-caffe` at 224."""
    model = torchvision_resnet(18, "torchscript", seed=11)
    onnx.save(model, tmp_path / "resnet18.onnx")
    out = tmp_path / "resnet18-caffe"
    result = run_cli("convert", tmp_path / "resnet18.onnx", "--like", "resnet18-B-torchpool",
                     "-o", out)
    assert result.code == 0, result.err
    write_build(spec_from_name("resnet18-B-torchpool"), tmp_path / "built", onnx=False)
    assert (out / "deploy.prototxt").read_bytes() == \
        (tmp_path / "built" / "deploy.prototxt").read_bytes()
    batch = random_input(model, 2, seed=12)
    want = softmax(reference_forward(model, batch))
    net = cv2.dnn.readNetFromCaffe(str(out / "deploy.prototxt"), str(out / "model.caffemodel"))
    net.setInput(batch)
    assert relative_error(net.forward(), want) <= TOLERANCE
    got = create_session(out / "model.onnx", device="cpu").run_list(batch)[-1]
    assert relative_error(got, want) <= TOLERANCE
    # MSRA's pool1 would be other numbers: --like resnet18-B refuses, naming the fitting name
    result = run_cli("convert", tmp_path / "resnet18.onnx", "--like", "resnet18-B", "-o",
                     tmp_path / "no")
    assert result.code == 2 and result.err.rstrip().endswith("use --like resnet18-B-torchpool")
    assert not (tmp_path / "no").exists()
    # the single-layer round_mode form (BVLC master) is the same architecture too
    result = run_cli("convert", tmp_path / "resnet18.onnx", "-o", tmp_path / "rm.prototxt",
                     "--floor-pooling", "round-mode")
    assert result.code == 0, result.err
    assert "round_mode: FLOOR" in (tmp_path / "rm.prototxt").read_text()
    assert diff(str(tmp_path / "rm.prototxt"), "resnet18-B-torchpool").equivalent


def test_family_figures_apply_with_either_stem():
    """pool1's padding changes no count, so torchvision's figures hold for -msrapool too."""
    from netgen.arch.paper_figures import figures_for
    from netgen.arch.spec import spec_from_name

    default = figures_for(spec_from_name("resnext50-32x4d"))
    assert [f.printed for f in default] == ["25,028,904", "4.23", "4.2"]
    assert figures_for(spec_from_name("resnext50-32x4d-msrapool")) == default
