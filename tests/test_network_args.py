"""Issue 16, item 5: one way to name a network. Every command that takes a network (build,
diff, draw, validate, summary, convert --like) accepts a name, a build folder, a prototxt or
an ONNX file (build: a name only), and refuses anything else in one line naming the forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import spec_from_name
from netgen.jobs.build import write_build
from netgen.jobs.diff import load_side
from netgen.jobs.network import FORMS, load_network, resolve
from trainval_fixtures import cifar_resnet_train_val

NAME = "cifar10-resnet20-B"


@pytest.fixture(scope="module")
def r20(tmp_path_factory) -> Path:
    """A build of cifar10-resnet20-B with weights (seed 3) and model.onnx."""
    out = tmp_path_factory.mktemp("builds") / NAME
    write_build(spec_from_name(NAME), out, weights=True, seed=3)
    return out


def _forms(folder: Path) -> dict[str, str]:
    return {"name": NAME, "folder": str(folder), "prototxt": str(folder / "deploy.prototxt"),
            "onnx": str(folder / "model.onnx")}


# --------------------------------------------------------------------------- the resolver


def test_the_four_forms_read_into_the_same_network(r20):
    built = count(build(spec_from_name(NAME)))
    for kind, arg in _forms(r20).items():
        ref = resolve(arg)
        assert ref.kind == kind
        side = load_network(arg)
        counted = count(side.graph)
        assert (counted.params, counted.macs) == (built.params, built.macs) == \
            (272_474, 40_813_184), kind
        assert side.graph.inputs[0].shape == (1, 3, 32, 32)
    # a build folder brings its caffemodel: weights as data, the very same numbers
    folder, deploy = load_network(str(r20)), load_network(str(r20 / "deploy.prototxt"))
    assert folder.weights_are_data and folder.weights_source == str(r20 / "model.caffemodel")
    assert not deploy.weights_are_data and "seed 0" in deploy.weights_source
    given = load_network(str(r20 / "deploy.prototxt"), caffemodel=r20 / "model.caffemodel")
    conv = folder.weights["conv1"][0]
    assert conv.shape == (16, 3, 3, 3) and np.array_equal(conv, given.weights["conv1"][0])
    assert not np.array_equal(conv, deploy.weights["conv1"][0])  # seed 3 vs seed 0
    assert load_network(str(r20 / "model.onnx")).weights_are_data
    # the old entry point is the same function
    assert load_side(str(r20)).weights_source == folder.weights_source


@pytest.mark.parametrize("arg, message", [
    ("googlenet", "'googlenet' is neither a file nor a network name; accepted: "),
    ("no/such/net.onnx", "no/such/net.onnx: no such file or folder; accepted: "),
    ("missing.prototxt", "missing.prototxt: no such file or folder; accepted: "),
])
def test_what_is_no_network_is_named_with_the_four_forms(arg, message):
    from netgen.errors import NetgenError

    with pytest.raises(NetgenError) as caught:
        resolve(arg)
    assert str(caught.value) == message + FORMS
    assert "a build folder" in FORMS and "an ONNX file" in FORMS and "a prototxt" in FORMS


COMMANDS = {
    "diff": lambda arg, tmp: ["diff", arg, NAME],
    "draw": lambda arg, tmp: ["draw", arg, "-o", tmp / "x.svg"],
    "validate": lambda arg, tmp: ["validate", arg, "--device", "cpu"],
    "summary": lambda arg, tmp: ["summary", arg],
    "convert --like": lambda arg, tmp: ["convert", tmp / "in.onnx", "--like", arg, "-o",
                                        tmp / "out"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_alike(run_cli, tmp_path, command):
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), tmp_path / "in.onnx")
    (tmp_path / "empty").mkdir()
    for arg, message in (("googlenet", "'googlenet' is neither a file nor a network name"),
                         (str(tmp_path / "empty"), "a folder without deploy.prototxt"),
                         (str(tmp_path / "none.onnx"), "none.onnx: no such file or folder")):
        result = run_cli(*COMMANDS[command](arg, tmp_path))
        assert result.code == 2 and result.err.count("\n") == 1, (command, result.err)
        assert message in result.err and result.err.rstrip().endswith(FORMS), result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "in.onnx"]


# --------------------------------------------------------------------------- build NAME


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name, options", [
    ("resnet50-B", ["--depth", "50", "--shortcut", "B"]),
    ("resnet50", ["--depth", "50"]),
    ("resnext50-32x4d", ["--groups", "32", "--width-per-group", "4"]),
    ("cifar10-resnet110-A", ["--dataset", "cifar10", "--depth", "110"]),
    ("cifar10-preresnet164", ["--dataset", "cifar10", "--preact", "--depth", "164"]),
])
def test_build_name_writes_what_the_options_write(run_cli, tmp_path, name, options):
    by_name = run_cli("build", name, "--out", tmp_path / "a", "--weights", "--seed", "5")
    by_options = run_cli("build", *options, "--out", tmp_path / "b", "--weights", "--seed", "5")
    assert by_name.code == by_options.code == 0, by_name.err + by_options.err
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert list(a) == list(b) and "model.caffemodel" in a and "model.onnx" in a
    for file in a:
        assert a[file] == b[file], file
    assert json.loads(a["summary.json"])["name"] == spec_from_name(name).name
    json_a = run_cli("build", name, "--out", tmp_path / "c", "--json").out
    assert json_a == a["summary.json"].decode()


def test_build_name_default_folder_is_the_canonical_name(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("build", "resnet18")
    assert result.code == 0, result.err
    assert (tmp_path / "generated" / "resnet18-B" / "deploy.prototxt").is_file()


def test_build_refuses_a_name_with_options_and_files(run_cli, tmp_path, r20):
    result = run_cli("build", "resnet50-B", "--depth", "50", "--out", tmp_path / "x")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "give a network (resnet50-B) or the options that make one" in result.err
    result = run_cli("build", "cifar10-resnet20-B", "--dataset", "cifar10", "--out", tmp_path / "x")
    assert result.code == 2 and "not both" in result.err
    for arg in (r20, r20 / "deploy.prototxt", r20 / "model.onnx"):
        result = run_cli("build", arg, "--out", tmp_path / "x")
        assert result.code == 2 and result.err.count("\n") == 1
        assert "build makes a network from a name or the options" in result.err
        assert "`netgen convert`" in result.err
    result = run_cli("build", "googlenet", "--out", tmp_path / "x")
    assert result.code == 2 and "'googlenet' is not a network name; names look like" in result.err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- summary


def test_summary_of_a_name_is_the_options_summary(run_cli):
    assert run_cli("summary", "resnet152-B").out == run_cli("summary", "--depth", "152").out
    assert run_cli("summary", "resnet152-B", "--json").out == \
        run_cli("summary", "--depth", "152", "--json").out
    result = run_cli("summary", "resnet152-B", "--depth", "152")
    assert result.code == 2 and "not both" in result.err


def test_summary_of_files_counts_their_ir(run_cli, r20):
    recorded = json.loads((r20 / "summary.json").read_text())
    for kind, arg in _forms(r20).items():
        result = run_cli("summary", arg, "--json")
        assert result.code == 0, result.err
        info = json.loads(result.out)
        for key in ("parameters", "multiply_adds", "stages", "input"):
            assert info[key] == recorded[key], (kind, key)
    text = run_cli("summary", r20 / "model.onnx").out.splitlines()
    assert text[0].startswith(f"{r20 / 'model.onnx'} ({NAME}): 22 weighted layers")
    assert [line.split()[0] for line in text[2:]] == ["conv1", "conv2_x", "conv3_x", "conv4_x",
                                                      "head", "total"]
    assert text[-1].split()[1:3] == ["272,474", "40,813,184"]


# --------------------------------------------------------------------------- validate


def test_validate_a_name_builds_it_with_the_paper_figures(run_cli):
    result = run_cli("validate", "cifar10-resnet20-A", "--device", "cpu")
    assert result.code == 0, result.out
    assert result.out.count("PASS ") == 6
    assert "(built in a temporary folder) cifar10-resnet20-A" in result.out
    counts = next(line for line in result.out.splitlines() if line.startswith("PASS 4"))
    assert "matches" in counts and "0.27" in counts  # Table 6: 0.27M parameters


def test_validate_single_files(run_cli, r20):
    deploy = run_cli("validate", r20 / "deploy.prototxt", "--device", "cpu")
    assert deploy.code == 0 and deploy.out.count("PASS ") == 6, deploy.out
    assert "the file as deploy.prototxt" in deploy.out
    assert "a file, not one of netgen's names: paper figures not applicable" in deploy.out
    model = run_cli("validate", r20 / "model.onnx", "--device", "cpu", "--json")
    data = json.loads(model.out)
    assert model.code == 0 and data["ok"], model.out
    assert [c["status"] for c in data["checks"]] == ["PASS"] * 6
    assert "the file as model.onnx" in data["notes"][0]
    # netgen's Caffe rendering of the file runs like the file (its own weights, seed 3)
    formats = data["checks"][4]["figure"]
    assert "model.caffemodel -> IR -> ONNX vs model.onnx" in formats


def test_validate_a_file_can_fail(run_cli, tmp_path, r20):
    """An ONNX file whose declared output shape contradicts its graph fails check 2."""
    model = onnx.load(str(r20 / "model.onnx"))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 11
    onnx.save(model, tmp_path / "bad.onnx")
    result = run_cli("validate", tmp_path / "bad.onnx", "--device", "cpu")
    assert result.code == 1 and "FAIL 2 onnx" in result.out, result.out


# --------------------------------------------------------------------------- diff and draw


def test_diff_any_form_against_any_form(run_cli, r20):
    forms = _forms(r20)
    for a in forms.values():
        for b in (forms["folder"], forms["onnx"]):
            result = run_cli("diff", a, b)
            assert result.code == 0 and "EQUIVALENT" in result.out, (a, b, result.out)
    # a folder's caffemodel is its weights: they run like its model.onnx
    result = run_cli("diff", r20, r20 / "model.onnx", "--numeric", "--weights", "own", "--json")
    data = json.loads(result.out)
    assert result.code == 0 and data["numeric"]["max_abs_diff"] <= 1e-4, data["numeric"]


def test_draw_any_form(run_cli, tmp_path, r20):
    out = tmp_path / "x.svg"
    result = run_cli("draw", *_forms(r20).values(), "-o", out)
    assert result.code == 0, result.err
    import xml.etree.ElementTree as ET

    root = ET.fromstring(out.read_text())
    columns = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
               if "network" in g.get("class", "").split()]
    assert [c.get("data-name") for c in columns] == [NAME] * 4


# --------------------------------------------------------------------------- convert --like


def _run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: batch})[0]


def test_convert_like_a_folder_a_prototxt_and_an_onnx_file(run_cli, tmp_path, r20):
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    reference = _run_onnx(r20 / "model.onnx", batch)
    by_name = run_cli("convert", r20 / "model.onnx", "--like", NAME, "-o", tmp_path / "name")
    assert by_name.code == 0, by_name.err
    for label, target in (("folder", r20), ("deploy", r20 / "deploy.prototxt")):
        result = run_cli("convert", r20 / "model.onnx", "--like", target, "-o", tmp_path / label)
        assert result.code == 0, result.err
        # netgen's own deploy reads and renders back byte for byte: the same files as NAME's
        for file in ("deploy.prototxt", "model.caffemodel"):
            assert (tmp_path / label / file).read_bytes() == \
                (tmp_path / "name" / file).read_bytes(), (label, file)
    # another project's train_val as the target: its layer names, INPUT's weights
    trainval = tmp_path / "trainval.prototxt"
    trainval.write_text(cifar_resnet_train_val())
    result = run_cli("convert", r20, "--like", trainval, "-o", tmp_path / "theirs",
                     "--input-shape", "1,3,32,32")
    assert result.code == 0, result.err
    deploy = (tmp_path / "theirs" / "deploy.prototxt").read_text()
    assert 'name: "res3_1_proj"' in deploy and 'name: "scale1"' in deploy
    assert np.max(np.abs(_run_onnx(tmp_path / "theirs" / "model.onnx", batch) - reference)) \
        <= 1e-4 * np.max(np.abs(reference))
    # an ONNX file as the target
    result = run_cli("convert", r20, "--like", r20 / "model.onnx", "-o", tmp_path / "onnx")
    assert result.code == 0, result.err
    assert np.max(np.abs(_run_onnx(tmp_path / "onnx" / "model.onnx", batch) - reference)) \
        <= 1e-4 * np.max(np.abs(reference))
    # a different architecture is refused naming the target
    result = run_cli("convert", r20, "--like", "cifar10-resnet20-A", "-o", tmp_path / "a")
    assert result.code == 2 and "not cifar10-resnet20-A's architecture" in result.err
    assert not (tmp_path / "a").exists()


def test_convert_a_build_folder_is_its_deploy_and_caffemodel(run_cli, tmp_path, r20):
    result = run_cli("convert", r20, "-o", tmp_path / "x.onnx")
    assert result.code == 0, result.err
    assert f"read {r20 / 'deploy.prototxt'}" in result.out
    assert f"weights: {r20 / 'model.caffemodel'}" in result.out
    batch = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    reference = _run_onnx(r20 / "model.onnx", batch)
    assert np.max(np.abs(_run_onnx(tmp_path / "x.onnx", batch) - reference)) <= 1e-5


def test_input_shape_is_refused_where_no_file_is_read(run_cli, tmp_path):
    for args in (["summary", "resnet18-B"], ["validate", "resnet18-B", "--device", "cpu"]):
        result = run_cli(*args, "--input-shape", "1,3,64,64")
        assert result.code == 2 and result.err.count("\n") == 1, args
        assert "a name's size is --input-size (or -inputN)" in result.err
        assert "--input-size" in run_cli(args[0], "--help").out
    result = run_cli("draw", "--block", "basic", "--input-shape", "1,3,64,64", "-o",
                     tmp_path / "x.svg")
    assert result.code == 2 and "not --block" in result.err
    assert list(tmp_path.iterdir()) == []
