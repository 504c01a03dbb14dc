"""The package layout is the architecture: imports point down, never across or up.

arch/ is the core every other folder builds on and imports no format or job; caffe/ and
onnx/ meet only in the IR, never in each other; jobs/ compose them; commands/ is the click
shell that nothing imports. Every import is read with ast, the lazy ones inside functions
and under TYPE_CHECKING included, so a crossing import fails here however it is spelled.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "netgen"

# folder -> the netgen folders it may import (besides itself and the root modules).
ALLOWED = {
    "arch": set(),
    "storage": set(),
    "caffe": {"arch", "storage"},
    "onnx": {"arch", "storage"},
    "jobs": {"arch", "storage", "caffe", "onnx"},
    "commands": {"arch", "storage", "caffe", "onnx", "jobs"},
    "": {"arch", "storage", "caffe", "onnx", "jobs"},  # netgen/*.py (errors, __main__)
}
ENTRY_POINTS = {"netgen/__main__.py"}  # `python -m netgen` is the console script itself


def module_name(path: Path, repo: Path = ROOT) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, repo: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path, repo)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from netgen import x` and `from netgen.caffe import reader` name modules too.
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def folder_of(module: str, package: Path = PACKAGE) -> str | None:
    """The netgen folder a module lives in ('' for root modules), None outside netgen."""
    parts = module.split(".")
    if parts[0] != "netgen":
        return None
    if len(parts) == 1:
        return ""
    if (package / parts[1]).is_dir():
        return parts[1]
    return "" if (package / f"{parts[1]}.py").is_file() else None


def crossings(repo: Path = ROOT) -> list[str]:
    package = repo / "netgen"
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(repo).as_posix()
        if rel in ENTRY_POINTS:
            continue
        own = folder_of(module_name(path, repo), package)
        reported = set()
        for line, module in imported_modules(path, repo):
            target = folder_of(module, package)
            if target is None or target == own or target == "" or line in reported:
                continue
            if target not in ALLOWED[own]:
                reported.add(line)
                problems.append(f"{rel}:{line} imports {module} ({own or 'netgen'}/ may import "
                                f"{', '.join(sorted(ALLOWED[own])) or 'no other folder'})")
    return problems


def test_every_folder_is_known():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(ALLOWED) - {""}


def test_imports_point_down():
    assert crossings() == []


def test_every_folder_says_what_lives_there_and_what_it_may_import():
    for folder in sorted(set(ALLOWED) - {""}):
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc and "import" in doc and len(doc) > 150, folder


def test_nothing_outside_the_shell_imports_commands():
    users = [(p.relative_to(ROOT).as_posix(), m) for p in PACKAGE.rglob("*.py")
             if "commands" not in p.parts and p.relative_to(ROOT).as_posix() not in ENTRY_POINTS
             for _, m in imported_modules(p) if folder_of(m) == "commands"]
    assert users == []


@pytest.mark.parametrize("folder, line, why", [
    ("caffe", "from netgen.onnx.export import to_onnx", "caffe/ may import arch, storage"),
    ("onnx", "from netgen.caffe import reader", "onnx/ may import arch, storage"),
    ("arch", "    from netgen.caffe.prototxt import render_deploy", "arch/ may import no other"),
    ("arch", "from netgen.jobs import diff", "arch/ may import no other"),
    ("jobs", "from netgen.commands.options import spec_from", "jobs/ may import arch, caffe"),
    ("onnx", "from ..caffe.proto import NetParameter", "onnx/ may import arch, storage"),
])
def test_a_crossing_import_is_caught(tmp_path, folder, line, why):
    """The checker itself, on a copy of the package with one bad import added."""
    fake_root = tmp_path / "repo"
    for path in PACKAGE.rglob("*.py"):
        target = fake_root / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    bad = fake_root / "netgen" / folder / "crossing.py"
    body = f"def f():\n{line}\n" if line.startswith(" ") else f"{line}\n"
    bad.write_text(body)
    found = crossings(fake_root)
    assert len(found) == 1 and found[0].startswith(f"netgen/{folder}/crossing.py:")
    assert why in found[0]
