"""Determinism across processes: the same command gives byte-identical files, every time.

Two separate interpreters with different PYTHONHASHSEED (so set and dict-of-str iteration
orders differ) build the same networks; every file's SHA-256 must agree. All of generated/
(netgen.jobs.paper.paper_specs()) is checked for prototxt and summary; a representative subset
also with model.caffemodel and model.onnx; all networks with weights and ONNX under --slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netgen.jobs.paper import paper_specs

REPRESENTATIVE = ["resnet18-A", "resnet18-B", "resnet18-C", "plain18", "resnet50-B",
                  "cifar10-resnet20-A", "cifar10-resnet110-A"]

_HASHER = r"""
import hashlib, json, sys
from netgen.jobs.build import BuildOptions, render_files
from netgen.jobs.paper import paper_specs
names, weights = json.loads(sys.argv[1]), sys.argv[2] == "1"
specs = {spec.name: spec for spec in paper_specs()}
out = {}
for name in names:
    files = render_files(specs[name], BuildOptions(weights=weights, onnx=weights))
    out[name] = {f: hashlib.sha256(data).hexdigest() for f, data in sorted(files.items())}
print(json.dumps(out))
"""


def digests_in_two_processes(names: list[str], weights: bool) -> tuple[dict, dict]:
    procs = [subprocess.Popen([sys.executable, "-c", _HASHER, json.dumps(names), str(int(weights))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
             for seed in ("1", "4242")]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results[0], results[1]


def assert_same(first: dict, second: dict, expect_files: set[str]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert expect_files <= first[name].keys(), (name, sorted(first[name]))
        differing = [f for f in first[name] if first[name][f] != second[name].get(f)]
        assert not differing, f"{name}: {differing} differ between processes"


def test_representative_subset_is_in_paper_specs():
    assert set(REPRESENTATIVE) <= {spec.name for spec in paper_specs()}


def test_all_networks_prototxt_and_summary_identical_across_processes():
    names = [spec.name for spec in paper_specs()]
    first, second = digests_in_two_processes(names, weights=False)
    assert_same(first, second, {"deploy.prototxt", "train_val.prototxt", "solver.prototxt",
                                "summary.json"})
    assert len(first) == len(names) == 28


def test_weights_and_onnx_identical_across_processes():
    first, second = digests_in_two_processes(REPRESENTATIVE, weights=True)
    assert_same(first, second, {"deploy.prototxt", "model.caffemodel", "model.onnx", "summary.json"})


@pytest.mark.slow
def test_all_networks_with_weights_identical_across_processes():
    names = [spec.name for spec in paper_specs()]
    first, second = digests_in_two_processes(names, weights=True)
    assert_same(first, second, {"deploy.prototxt", "model.caffemodel", "model.onnx", "summary.json"})
