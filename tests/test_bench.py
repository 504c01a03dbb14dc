"""`netgen bench` and the benchmarks report's machinery (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from netgen.arch.spec import make_spec
from netgen.errors import NetgenError
from netgen.jobs import benchmarks
from netgen.jobs.benchmarks import BenchContext, Section, matmul_rate, write_report
from netgen.jobs.build import write_build


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cifar8"
    write_build(make_spec("cifar10", 8), out, weights=True)
    return out


def test_bench_json_gives_positive_numbers(run_cli, folder):
    result = run_cli("bench", folder, "--device", "cpu", "--batch", "1,2", "--repeat", "2",
                     "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["network"] == "cifar10-resnet8-A" and data["device"] == "cpu"
    assert [t["batch"] for t in data["timings"]] == [1, 2]
    first = data["timings"][0]
    assert first["runs"] == 2
    assert first["ms_per_batch"] > 0 and first["images_per_s"] > 0
    assert first["images_per_s"] == pytest.approx(1e3 / first["ms_per_batch"])
    assert data["build_s"] > 0 and data["session_s"] > 0 and data["threads"] >= 1


def test_bench_text_and_onnx_file(run_cli, folder):
    result = run_cli("bench", folder / "model.onnx", "--device", "cpu", "--batch", "1",
                     "--repeat", "1")
    assert result.code == 0
    assert "batch    1:" in result.out and "images/s" in result.out


def test_bench_user_errors(run_cli, folder, tmp_path):
    for args in (["bench", tmp_path / "missing"], ["bench", folder, "--batch", "0"],
                 ["bench", folder, "--batch", "one"], ["bench", folder, "--repeat", "0"],
                 ["bench", tmp_path]):
        result = run_cli(*args)
        assert result.code == 2, args
        assert result.err.startswith("error: ")


def test_matmul_rate_is_measured():
    rate = matmul_rate(sizes=(64, 128), repeat=2, warmup=1)
    assert rate["macs_per_s"] > 0
    assert [row["n"] for row in rate["sizes"]] == [64, 128]
    assert rate["macs_per_s"] == max(row["macs_per_s"] for row in rate["sizes"])


def test_report_is_a_list_of_sections(tmp_path):
    titles = [s.title for s in benchmarks.SECTIONS]
    assert titles[:2] == ["Machine", "Runtimes on the same files"]

    seen = []

    def first(ctx: BenchContext) -> str:
        ctx.results["shared"] = 42
        return "body one"

    def second(ctx: BenchContext) -> str:
        seen.append(ctx.results["shared"])
        return "body two"

    out = tmp_path / "sub" / "results.md"
    text = write_report(out, repeat=1, warmup=0,
                        sections=[Section("One", first), Section("Two", second)], log=None)
    assert out.read_text() == text
    assert text.index("## One") < text.index("body one") < text.index("## Two")
    assert seen == [42]


def test_benchmarks_main_usage():
    assert benchmarks.main([]) == 2
    assert benchmarks.main(["--help"]) == 2


def test_bench_path_validates_arguments(folder):
    with pytest.raises(NetgenError):
        benchmarks.bench_path(folder, "cpu", (), 1)
