"""Issue 19: Caffe training files from other projects, read by every command, including those
whose data layer does not tell the input size (LMDB Data layers without crop_size).

The fixtures (tests/trainval_fixtures.py) are written in the style of a widely used Caffe
CIFAR repository, not by netgen's templates; each goes through diff, draw, validate and
summary, and its figures are compared with cifar10-resnet20-B built by netgen.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from netgen.arch.builder import build
from netgen.arch.spec import spec_from_name
from netgen.caffe.reader import read_net
from netgen.errors import InputShapeNeeded
from netgen.jobs.build import summary as summarize
from trainval_fixtures import cifar_resnet_train_val, hdf5_data, image_data

SVG = "{http://www.w3.org/2000/svg}"
R20 = spec_from_name("cifar10-resnet20-B")
R20_INFO = summarize(R20, build(R20))
# Every command that reads a network from a prototxt, with what it needs besides the file.
COMMANDS = {
    "diff": lambda f, tmp: ["diff", f, "cifar10-resnet20-B"],
    "draw": lambda f, tmp: ["draw", f, "-o", tmp / "out.svg"],
    "validate": lambda f, tmp: ["validate", f, "--device", "cpu"],
    "summary": lambda f, tmp: ["summary", f],
    "convert": lambda f, tmp: ["convert", f, "-o", tmp / "out.onnx"],
    "bench": lambda f, tmp: ["bench", f, "--device", "cpu", "--batch", "1", "--repeat", "1"],
    "identify": lambda f, tmp: ["identify", f],
}


@pytest.fixture
def lmdb_file(tmp_path):
    path = tmp_path / "nets" / "trainval.prototxt"
    path.parent.mkdir()
    path.write_text(cifar_resnet_train_val())
    return path


def _written(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "nets")


def _options_in(text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z0-9-]*", text))


# --------------------------------------------------------------------------- the refusal


def test_the_reader_names_no_option_and_says_what_is_missing(lmdb_file):
    with pytest.raises(InputShapeNeeded) as caught:
        read_net(lmdb_file)
    message = str(caught.value)
    assert "--" not in message
    assert message == ("layer 'cifar' (Data): cannot tell the input size from this data layer "
                       "(no crop_size: the image size is in the database); give the input "
                       "shape explicitly")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_refuses_naming_only_its_own_option(run_cli, lmdb_file, tmp_path, command):
    """Exit 2, one line naming the file and an option that the command's --help lists."""
    result = run_cli(*COMMANDS[command](lmdb_file, tmp_path))
    assert result.code == 2 and result.err.count("\n") == 1 and result.out == "", result.err
    assert result.err.startswith(f"error: {lmdb_file}: layer 'cifar' (Data): cannot tell the "
                                 "input size")
    suggested = _options_in(result.err)
    assert suggested == {"--input-shape"}
    helptext = run_cli(command, "--help").out
    assert suggested <= _options_in(helptext), command
    assert _written(tmp_path) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("shape", ["3,32,32", "0,3,32,32", "1,3,-32,32", "1,3,32,x", ""])
def test_bad_shapes_exit_2_with_one_line_and_write_nothing(run_cli, lmdb_file, tmp_path,
                                                           command, shape):
    result = run_cli(*COMMANDS[command](lmdb_file, tmp_path), f"--input-shape={shape}")
    assert result.code == 2 and result.err.count("\n") == 1 and result.out == "", result.err
    assert result.err == ("error: --input-shape needs four positive integers N,C,H,W (e.g. "
                          f"1,3,32,32), got {shape!r}\n")
    assert _written(tmp_path) == []


# --------------------------------------------------------------------------- LMDB: the option


def test_diff_with_the_shape_finds_cifar10_resnet20_b(run_cli, lmdb_file):
    result = run_cli("diff", lmdb_file, "cifar10-resnet20-B", "--input-shape", "1,3,32,32",
                     "--json")
    assert result.code == 0, result.out + result.err
    data = json.loads(result.out)
    assert data["equivalent"] is True
    assert data["a"]["parameters"] == data["b"]["parameters"] == R20_INFO["parameters"] == 272_474
    assert data["a"]["multiply_adds"] == R20_INFO["multiply_adds"] == 40_813_184
    # option A's zero-padding is another architecture: the file's projections are found
    other = run_cli("diff", lmdb_file, "cifar10-resnet20-A", "--input-shape", "1,3,32,32")
    assert other.code == 1 and "EQUIVALENT" not in other.out
    # the shape goes to the side that needs it only; both sides as files work alike
    both = run_cli("diff", lmdb_file, lmdb_file, "--input-shape", "1,3,32,32")
    assert both.code == 0 and "EQUIVALENT" in both.out


def test_a_file_that_declares_its_size_keeps_it(run_cli, tmp_path, lmdb_file):
    """--input-shape is for files that do not tell: a deploy's own 32x32 stays."""
    from netgen.jobs.build import write_build

    write_build(R20, tmp_path / "r20", onnx=False)
    result = run_cli("diff", tmp_path / "r20" / "deploy.prototxt", lmdb_file, "--input-shape",
                     "1,3,32,32", "--json")
    assert result.code == 0, result.out + result.err
    summary = run_cli("summary", tmp_path / "r20", "--input-shape", "1,3,64,64", "--json")
    assert json.loads(summary.out)["input"] == {"data": [1, 3, 32, 32]}


def _columns(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if "network" in g.get("class", "").split()]


def _boxes(column: ET.Element) -> list[str]:
    return ["".join(box.find(f"{SVG}text").itertext()) for box in column.iter(f"{SVG}g")
            if "box" in box.get("class", "").split()]


def _arcs(column: ET.Element) -> list[str]:
    return [p.get("class") for p in column.iter(f"{SVG}path")
            if "shortcut" in p.get("class", "").split()]


def test_draw_with_the_shape_draws_what_the_name_draws(run_cli, lmdb_file, tmp_path):
    out = tmp_path / "x.svg"
    result = run_cli("draw", lmdb_file, "cifar10-resnet20-B", "--input-shape", "1,3,32,32",
                     "-o", out)
    assert result.code == 0, result.err
    mine, netgens = _columns(out.read_text())
    assert _boxes(mine) == _boxes(netgens)
    # the image, 19 convolutions (projections are arcs), the pool, the fc
    assert len(_boxes(mine)) == 22 and _boxes(mine)[:2] == ["image", "3x3 conv, 16"]
    assert "3x3 conv, 32, /2" in _boxes(mine) and _boxes(mine)[-1] == "fc 10"
    assert _arcs(mine) == _arcs(netgens) and len(_arcs(mine)) == 9


def test_validate_with_the_shape_runs_all_six_checks(run_cli, lmdb_file):
    result = run_cli("validate", lmdb_file, "--input-shape", "1,3,32,32", "--device", "cpu")
    assert result.code == 0, result.out + result.err
    assert result.out.count("PASS ") == 6
    assert "the file as train_val.prototxt" in result.out
    assert "272,474 parameters" in result.out and "paper figures not applicable" in result.out


def test_summary_with_the_shape_counts_what_netgen_counts(run_cli, lmdb_file):
    result = run_cli("summary", lmdb_file, "--input-shape", "1,3,32,32", "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["input"] == {"data": [1, 3, 32, 32]}
    assert (info["parameters"], info["multiply_adds"]) == (R20_INFO["parameters"],
                                                           R20_INFO["multiply_adds"])
    assert info["layer_types"]["Convolution"] == 21 and info["spec"] is None
    # its names (conv1, conv2_1_a, ...) do not tell the stages: its topology does
    assert [(s["stage"], s["blocks"], s["parameters"]) for s in info["stages"]] == \
        [(s["stage"], s["blocks"], s["parameters"]) for s in R20_INFO["stages"]]
    text = run_cli("summary", lmdb_file, "--input-shape", "1,3,32,32").out
    assert "do not tell the stages" not in text and text.splitlines()[3].split()[:4] == \
        ["conv2_x", "32x32", "16", "3"]
    assert text.splitlines()[-1].split()[1:3] == ["272,474", "40,813,184"]


def test_convert_with_the_shape(run_cli, lmdb_file, tmp_path):
    result = run_cli("convert", lmdb_file, "-o", tmp_path / "net.onnx", "--input-shape",
                     "2,3,32,32")
    assert result.code == 0, result.err
    assert "input 'data' [2, 3, 32, 32]" in result.out
    import onnx

    model = onnx.load(str(tmp_path / "net.onnx"))
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 32, 32]


# --------------------------------------------------------------------------- ImageData


def test_image_data_new_height_width_tells_the_size(run_cli, tmp_path):
    path = tmp_path / "nets" / "images.prototxt"
    path.parent.mkdir()
    path.write_text(cifar_resnet_train_val(data=image_data))
    result = run_cli("diff", path, "cifar10-resnet20-B")
    assert result.code == 0 and "EQUIVALENT" in result.out, result.out + result.err
    info = json.loads(run_cli("summary", path, "--json").out)
    assert info["input"] == {"data": [1, 3, 32, 32]}
    assert info["multiply_adds"] == R20_INFO["multiply_adds"]
    assert run_cli("draw", path, "-o", tmp_path / "x.svg").code == 0
    assert len(_boxes(_columns((tmp_path / "x.svg").read_text())[0])) == 22
    validated = run_cli("validate", path, "--device", "cpu")
    assert validated.code == 0 and validated.out.count("PASS ") == 6, validated.out
    # at 40x40 the same layers count more multiply-adds, by the area ratio in the convs
    path.write_text(cifar_resnet_train_val(data=lambda phase: image_data(phase, 40)))
    bigger = json.loads(run_cli("summary", path, "--json").out)
    assert bigger["input"] == {"data": [1, 3, 40, 40]}
    fc = 64 * 10
    assert bigger["multiply_adds"] - fc == (R20_INFO["multiply_adds"] - fc) * 40 * 40 // (32 * 32)


# --------------------------------------------------------------------------- HDF5


def _hdf5_fixture(tmp_path, shape=(4, 3, 32, 32)):
    h5py = pytest.importorskip("h5py", reason="h5py (the hdf5 extra) is not installed: the "
                                              "HDF5Data size is read from the .h5 file with it")
    folder = tmp_path / "nets"
    folder.mkdir()
    (folder / "data").mkdir()
    with h5py.File(folder / "data" / "train0.h5", "w") as h5:
        h5.create_dataset("data", data=np.zeros(shape, np.float32))
        h5.create_dataset("label", data=np.zeros((shape[0],), np.float32))
    # the list names the file relative to itself, as Caffe users write them next to it
    (folder / "data" / "files.txt").write_text("train0.h5\nmissing-but-never-read.h5\n")
    path = folder / "h5.prototxt"
    path.write_text(cifar_resnet_train_val(data=hdf5_data("data/files.txt")))
    return path


def test_hdf5_size_comes_from_the_first_listed_file(run_cli, tmp_path):
    path = _hdf5_fixture(tmp_path)
    result = run_cli("diff", path, "cifar10-resnet20-B")
    assert result.code == 0 and "EQUIVALENT" in result.out, result.out + result.err
    info = json.loads(run_cli("summary", path, "--json").out)
    assert info["input"] == {"data": [1, 3, 32, 32]}
    assert info["parameters"] == R20_INFO["parameters"]
    assert run_cli("draw", path, "-o", tmp_path / "x.svg").code == 0
    assert _arcs(_columns((tmp_path / "x.svg").read_text())[0]) == \
        _arcs(_columns(run_cli_svg(run_cli, tmp_path))[0])
    validated = run_cli("validate", path, "--device", "cpu")
    assert validated.code == 0 and validated.out.count("PASS ") == 6, validated.out


def run_cli_svg(run_cli, tmp_path) -> str:
    out = tmp_path / "name.svg"
    assert run_cli("draw", "cifar10-resnet20-B", "-o", out).code == 0
    return out.read_text()


def test_hdf5_of_another_size(run_cli, tmp_path):
    path = _hdf5_fixture(tmp_path, (2, 3, 24, 24))
    info = json.loads(run_cli("summary", path, "--json").out)
    assert info["input"] == {"data": [1, 3, 24, 24]}
    assert info["stages"][-1]["output_size"] == [10]


def test_hdf5_without_h5py_says_how_in_one_line(run_cli, tmp_path, monkeypatch):
    path = _hdf5_fixture(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import fails as if not installed
    for command in sorted(COMMANDS):
        result = run_cli(*COMMANDS[command](path, tmp_path))
        assert result.code == 2 and result.err.count("\n") == 1, (command, result.err)
        assert "needs h5py (pip install 'netgen[hdf5]'); or give it with --input-shape N,C,H,W" \
            in result.err
        assert _options_in(result.err) <= _options_in(run_cli(command, "--help").out)
    # with the option the file is not opened at all
    result = run_cli("summary", path, "--input-shape", "1,3,32,32", "--json")
    assert result.code == 0 and json.loads(result.out)["parameters"] == R20_INFO["parameters"]


def test_hdf5_source_that_is_not_there(run_cli, tmp_path):
    path = tmp_path / "h5.prototxt"
    path.write_text(cifar_resnet_train_val(data=hdf5_data("no/such/list.txt")))
    result = run_cli("summary", path)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "its source list 'no/such/list.txt' is not found" in result.err
    assert "--input-shape N,C,H,W" in result.err


def test_bench_with_the_shape(run_cli, lmdb_file):
    result = run_cli("bench", lmdb_file, "--input-shape", "1,3,32,32", "--device", "cpu",
                     "--batch", "1,2", "--repeat", "1", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["model"] == "emitted from the prototxt with seed-0 weights"
    assert [t["batch"] for t in data["timings"]] == [1, 2]
    assert all(t["ms_per_batch"] > 0 for t in data["timings"])
