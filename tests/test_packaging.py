"""netgen as users install it: a wheel and an sdist built from a clean copy of the tree,
the wheel installed with its dependencies (and without the test extra) into a new virtual
environment, every command run from a folder outside the tree.

An editable install reads the source tree, so the rest of the suite cannot see a file left
out of the package; this test can. It reuses pip's wheel cache for the dependencies (a
fresh machine fills it when `make` installs the project), never the source tree.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The commands of a new user's first session, with the exit code each must give.
COMMANDS: list[tuple[list[str], int]] = [
    (["--version"], 0),
    (["list"], 0),
    (["summary", "--depth", "50", "--json"], 0),
    (["build", "--depth", "18", "--shortcut", "B", "--weights", "--out", "X"], 0),
    (["validate", "X"], 0),
    (["diff", "resnet50-A", "resnet50-B"], 1),
    (["convert", "X/deploy.prototxt", "X/model.caffemodel", "-o", "Y.onnx"], 0),
    (["convert", "Y.onnx", "-o", "Z.prototxt", "--caffemodel-out", "Z.caffemodel"], 0),
    (["diff", "Y.onnx", "Z.prototxt"], 0),
    (["bench", "X", "--batch", "1", "--repeat", "2"], 0),
    (["build", "--depth", "42"], 2),
]

TEST_ONLY = ("pytest", "hypothesis", "cv2", "xdist")
pytestmark = pytest.mark.xdist_group("packaging")


def _tree_files() -> list[str]:
    """What a fresh clone holds: the tracked files, plus untracked ones git does not ignore
    (so that a file not yet committed is tested as it will be)."""
    if (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=ROOT, check=True, capture_output=True).stdout
        return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]
    skip = {".venv", "build", "dist", ".pytest_cache", ".hypothesis", "__pycache__", "out"}
    return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, the wheel built from the sdist as pip would from an index."""
    base = tmp_path_factory.mktemp("packaging")
    copy = base / "src"
    for rel in _tree_files():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    dist = base / "dist"
    built = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(copy)],
                 cwd=base)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels, sdists = list(dist.glob("netgen-*.whl")), list(dist.glob("netgen-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    return {"base": base, "copy": copy, "wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def installed(artifacts) -> Path:
    """A new virtual environment holding the wheel and its install_requires only."""
    venv = artifacts["base"] / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=artifacts["base"])
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                "--disable-pip-version-check", str(artifacts["wheel"])], cwd=artifacts["base"])
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return venv


def test_wheel_holds_every_module_and_template(artifacts):
    names = set(zipfile.ZipFile(artifacts["wheel"]).namelist())
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "netgen").rglob("*.py"))
    assert len(modules) > 30
    assert [m for m in modules if m not in names] == []
    templates = sorted(p.relative_to(ROOT / "templates").as_posix()
                       for p in (ROOT / "templates").rglob("*.j2"))
    assert len(templates) >= 15
    assert [t for t in templates if f"netgen/templates/{t}" not in names] == []
    assert "netgen/caffe/caffe.proto" in names
    # Nothing outside the package is installed into site-packages.
    assert {n.split("/")[0] for n in names} == {"netgen", artifacts["wheel"].name.split("-py")[0]
                                                + ".dist-info"}


def test_sdist_holds_readme_proto_templates_and_tests(artifacts):
    with tarfile.open(artifacts["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    expected = {"README.md", "LICENSE", "setup.cfg", "setup.py", "pyproject.toml", "Makefile",
                "netgen/caffe/caffe.proto"}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.j2")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("*.py")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "fixtures" / "exports").iterdir()}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "fixtures" / "mxnet").iterdir()}
    expected |= {p.relative_to(ROOT).as_posix()
                 for p in (ROOT / "tests" / "fixtures" / "senet").glob("*.prototxt")}
    assert sorted(expected - names) == []


def test_metadata_passes_twine_check_and_names_what_an_index_shows(artifacts):
    check = _run([sys.executable, "-m", "twine", "check", "--strict", str(artifacts["wheel"]),
                  str(artifacts["sdist"])], cwd=artifacts["base"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2
    with zipfile.ZipFile(artifacts["wheel"]) as wheel:
        meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(wheel.read(meta_name).decode())
    assert meta["Name"] == "netgen" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier")
    # no project URLs until the repository is published (a dead link misleads)
    assert meta.get_all("Project-URL") is None and "github.com" not in str(meta)
    assert "onnx" in meta["Keywords"] and "caffe" in meta["Keywords"]
    # Run-time requirements are unconditional and bounded below; test tools only in extras.
    requires = meta.get_all("Requires-Dist")
    runtime = {r.split(">=")[0] for r in requires if "extra ==" not in r}
    assert runtime == {"protobuf", "numpy", "jinja2", "markupsafe", "click", "onnx", "onnxruntime"}
    assert all(">=" in r for r in requires if "extra ==" not in r)
    for tool in ("pytest", "hypothesis", "opencv-python-headless", "h5py"):
        assert any(r.startswith(tool) and 'extra == "test"' in r for r in requires), tool
    assert any(r.startswith("h5py") and 'extra == "hdf5"' in r for r in requires)
    assert meta["Version"] == _source_version()


def _source_version() -> str:
    namespace: dict = {}
    exec((ROOT / "netgen" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def test_every_command_works_from_the_installed_wheel(installed, tmp_path):
    python, netgen = installed / "bin" / "python", installed / "bin" / "netgen"
    present = _run([str(python), "-c", "import importlib.util as u; print(' '.join(m for m in "
                    f"{TEST_ONLY!r} if u.find_spec(m)))"], cwd=tmp_path)
    assert present.returncode == 0 and present.stdout.strip() == "", present.stdout
    # The run-time code must not import the test tools even where they are absent.
    env = {"PATH": f"{installed / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "LC_ALL": "C.UTF-8"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    outputs = {}
    for args, expected in COMMANDS:
        result = _run([str(netgen), *args], cwd=work, env=env)
        shown = " ".join(args)
        assert "Traceback" not in result.stdout + result.stderr, (shown, result.stderr[-2000:])
        assert result.returncode == expected, (shown, result.returncode, result.stdout[-1500:],
                                               result.stderr[-1500:])
        outputs[shown] = result
    version = _run([str(python), "-c", "import importlib.metadata as m; print(m.version('netgen'))"],
                   cwd=work, env=env).stdout.strip()
    assert outputs["--version"].stdout.strip() == f"netgen, version {version}"
    assert version == _source_version()
    # The modules really came from the venv, not from the source tree.
    origin = _run([str(python), "-c", "import netgen; print(netgen.__file__)"], cwd=work,
                  env=env).stdout.strip()
    assert origin.startswith(str(installed)), origin
    summary = json.loads(outputs["summary --depth 50 --json"].stdout)
    assert (summary["parameters"], summary["multiply_adds"]) == (25_557_096, 3_857_973_248)
    assert "resnet50-B" in outputs["list"].stdout and "cifar10-resnet1202-A" in outputs["list"].stdout
    assert (work / "X" / "deploy.prototxt").is_file() and (work / "X" / "model.onnx").is_file()
    assert (work / "Y.onnx").stat().st_size > 40_000_000  # ResNet-18's 11.7M float32 weights
    assert (work / "Z.caffemodel").stat().st_size > 40_000_000
    assert "EQUIVALENT" in outputs["diff Y.onnx Z.prototxt"].stdout
    assert "error:" in outputs["build --depth 42"].stderr
    assert len(outputs["build --depth 42"].stderr.strip().splitlines()) == 1
    report = outputs["validate X"].stdout
    assert report.count("PASS ") == 5 and "FAIL" not in report, report
    assert "SKIP 6 opencv" in report  # OpenCV belongs to the test extra, absent here
