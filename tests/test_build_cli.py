"""`netgen build`, `list`, `summary`: files, errors, atomicity, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netgen.caffe import proto as caffe_proto

BUILD_FAST = ["--dataset", "cifar10", "--depth", "20"]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_build_writes_every_file(run_cli, tmp_path):
    out = tmp_path / "r20"
    result = run_cli("build", *BUILD_FAST, "--out", out, "--weights")
    assert result.code == 0, result.err
    assert sorted(os.listdir(out)) == ["deploy.prototxt", "model.caffemodel", "model.onnx",
                                       "solver.prototxt", "summary.json", "train_val.prototxt"]
    summary = json.loads((out / "summary.json").read_text())
    # conv1 32*32*16*27; stage 2: 6 convs of 32*32*16*16*9; stages 3 and 4: one entry conv
    # (16*16*32*16*9, 8*8*64*32*9) + 5 convs of 2,359,296 each; fc 64*10
    macs = 442_368 + 6 * 2_359_296 + 2 * (1_179_648 + 5 * 2_359_296) + 640
    assert summary["parameters"] == 269_722 and summary["multiply_adds"] == macs == 40_551_040
    assert summary["spec"]["shortcut"] == "A" and summary["layers"] == 94
    assert [s["stage"] for s in summary["stages"]] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "head"]
    assert [s["blocks"] for s in summary["stages"]] == [0, 3, 3, 3, 0]
    assert sum(s["parameters"] for s in summary["stages"]) == summary["parameters"]
    model = caffe_proto.read_caffemodel(out / "model.caffemodel")
    assert [l.name for l in model.layer][:3] == ["conv1", "bn_conv1", "scale_conv1"]
    assert len(model.layer) == 21 + 19 + 19 + 1  # conv, BN, Scale, fc


def test_build_default_is_resnet50_b_in_generated(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("build")
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "generated/resnet50-B/summary.json").read_text())
    assert summary["parameters"] == 25_557_096 and summary["layers"] == 228


def test_build_json(run_cli, tmp_path):
    result = run_cli("build", *BUILD_FAST, "--plain", "--out", tmp_path / "p", "--json")
    assert result.code == 0
    assert json.loads(result.out)["name"] == "cifar10-plain20"


@pytest.mark.parametrize(("args", "message"), [
    (["--depth", "42"], "not in Table 1"),
    (["--dataset", "cifar10", "--depth", "30"], "6n+2"),
    (["--shortcut", "D"], "allowed: A, B, C"),
    (["--plain", "--shortcut", "B"], "--plain nets have no shortcuts"),
    (["--depth", "0"], "positive"),
    (["--stages", "3,-1,6,3"], "positive"),
    (["--stages", "3,x"], "comma-separated integers"),
    (["--classes", "0"], "positive"),
    (["--seed", "-1"], "--seed"),
    (["--opset", "9"], "between 13 and 21"),
    (["--data", "csv"], "allowed: lmdb, imagedata, hdf5, dummy"),
    (["--batch-size", "0"], "positive"),
    (["--bogus"], "No such option"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(run_cli, tmp_path, args, message):
    before = _listing(tmp_path)
    result = run_cli("build", *args, "--out", tmp_path / "x")
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("error: ")
    assert "Traceback" not in result.err and result.out == ""
    assert _listing(tmp_path) == before


def test_existing_folder_needs_force(run_cli, tmp_path):
    out = tmp_path / "r20"
    assert run_cli("build", *BUILD_FAST, "--out", out, "--weights").code == 0
    first = (out / "deploy.prototxt").read_bytes()
    result = run_cli("build", *BUILD_FAST, "-s", "B", "--out", out)
    assert result.code == 2 and "--force" in result.err
    assert (out / "deploy.prototxt").read_bytes() == first
    # --force replaces the files and removes the stale weights of the previous build
    assert run_cli("build", *BUILD_FAST, "-s", "B", "--out", out, "--force").code == 0
    assert b"res3a_branch1_sub" not in (out / "deploy.prototxt").read_bytes()
    assert not (out / "model.caffemodel").exists()
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_out_pointing_at_a_file(run_cli, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep")
    result = run_cli("build", *BUILD_FAST, "--out", target)
    assert result.code == 2 and "is a file" in result.err
    assert target.read_text() == "keep"
    result = run_cli("build", *BUILD_FAST, "--out", target / "sub")
    assert result.code == 2 and "is a file" in result.err


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_command_writes_byte_identical_files(tmp_path):
    """Two processes with different hash seeds: every file, weights included, is identical."""
    outs = []
    for i, hashseed in enumerate(("1", "2")):
        out = tmp_path / f"b{i}"
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        subprocess.run([sys.executable, "-m", "netgen.commands.cli", "build", "-d", "18", "-s", "A",
                        "--weights", "--out", str(out)], check=True, env=env, capture_output=True)
        outs.append(_hashes(out))
    assert outs[0] == outs[1] and len(outs[0]) == 6


def test_seed_changes_weights_only(run_cli, tmp_path):
    for seed in (0, 1):
        assert run_cli("build", *BUILD_FAST, "--weights", "--seed", seed, "--out", tmp_path / str(seed)).code == 0
    a, b = _hashes(tmp_path / "0"), _hashes(tmp_path / "1")
    assert a["deploy.prototxt"] == b["deploy.prototxt"]
    assert a["model.caffemodel"] != b["model.caffemodel"]


def test_help_and_version(run_cli):
    for command in ([], ["build"], ["list"], ["summary"]):
        result = run_cli(*command, "--help")
        assert result.code == 0 and "Usage:" in result.out
    result = run_cli("--version")
    assert result.code == 0 and result.out.strip() == "netgen, version 0.1.0"


def test_console_script_exit_code():
    result = subprocess.run([sys.executable, "-m", "netgen.commands.cli", "build", "--depth", "42"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ImageNet depth 42 is not in Table 1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_list(run_cli):
    result = run_cli("list", "--json")
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert sum(row["section"] == "paper" for row in rows.values()) == 28
    assert rows["resnet152-B"]["parameters"] == 60_192_808
    assert rows["cifar10-resnet1202-A"]["parameters"] == 19_421_274
    assert rows["plain34"]["shortcut"] == "plain"
    assert "resnet101-C" in run_cli("list").out


def test_summary_table(run_cli):
    result = run_cli("summary", "--depth", "152")
    assert result.code == 0
    lines = result.out.splitlines()
    conv4 = next(line for line in lines if line.startswith("conv4_x")).split()
    assert conv4 == ["conv4_x", "14x14", "1024", "36", "40,613,888", "7,938,244,608"]
    assert "11,282,415,616" in lines[-1] and "11.28 x 10^9" in lines[-1]
    info = json.loads(run_cli("summary", "--dataset", "cifar10", "--depth", "110", "--json").out)
    assert info["parameters"] == 1_727_962
