"""Shared helpers: run the CLI in-process and capture its exit code and output."""

from __future__ import annotations

import pytest

from netgen.commands.cli import main


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_cli(capsys):
    """Call `netgen ARGS...` as the console script would, return code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# --------------------------------------------------------------------------- options and markers


def pytest_addoption(parser):
    group = parser.getgroup("netgen")
    group.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                    help="total number of cases tests/test_fuzz.py runs, shared evenly among "
                         "its properties (default: 200 per property)")
    group.addoption("--slow", action="store_true", default=False,
                    help="also run tests marked slow (the largest networks)")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only with --slow or when `-m` names them."""
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# Fuzz properties report how many cases they ran through user_properties, which pytest-xdist
# carries back from its workers, so the total is right with -n too.
_FUZZ_CASES = {"cases": 0, "properties": 0, "failed": 0}


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == "fuzz_cases":
            _FUZZ_CASES["cases"] += int(value)
            _FUZZ_CASES["properties"] += 1
            _FUZZ_CASES["failed"] += int(report.failed)


def pytest_terminal_summary(terminalreporter):
    if _FUZZ_CASES["properties"]:
        failed = _FUZZ_CASES["failed"]
        outcome = f"{failed} properties FAILED" if failed else "zero uncaught exceptions"
        terminalreporter.write_line(
            f"fuzz: {_FUZZ_CASES['cases']:,} cases run by {_FUZZ_CASES['properties']} "
            f"properties, {outcome}")
