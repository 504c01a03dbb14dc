"""The package layout is the architecture: imports point down, never across or up.

arch/ is the core every other folder builds on and imports no format or job; analysis/
(one analysis of a network: canonical ops, topology, units) reads only the IR; caffe/ and
onnx/ meet only in the IR, never in each other; jobs/ compose them, each job reaching
another only through its public interface (the package, never its modules); commands/ is
the click shell that nothing imports. No two modules import each other. Every import is read with ast, the lazy ones inside functions
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
    "analysis": {"arch"},
    "storage": set(),
    "caffe": {"arch", "storage"},
    "onnx": {"arch", "storage"},
    "runtimes": set(),  # other people's runtimes, driven through their files only
    "jobs": {"arch", "analysis", "storage", "caffe", "onnx", "runtimes"},
    "commands": {"arch", "analysis", "storage", "caffe", "onnx", "jobs", "runtimes"},
    "": {"arch", "analysis", "storage", "caffe", "onnx", "jobs", "runtimes"},  # netgen/*.py (errors, __main__)
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


def module_file(module: str, package: Path = PACKAGE) -> Path | None:
    """The file of a netgen module (a package's __init__.py), or None if it names no module
    (e.g. a function imported from one)."""
    parts = module.split(".")
    if parts[0] != "netgen":
        return None
    base = package.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _bound_names(init: Path | None) -> set[str]:
    """Names a package's __init__.py binds itself (`from .compare import compare` makes
    `netgen.jobs.diff.compare` the function, the package's interface, not the module)."""
    if init is None or init.name != "__init__.py":
        return set()
    names = set()
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def import_graph(repo: Path = ROOT) -> dict[str, set[str]]:
    """netgen module -> the netgen modules it imports (lazy and TYPE_CHECKING ones too).
    `from package import module` imports the module, and the package only where some name
    it takes is not a module of it."""
    package = repo / "netgen"
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, repo)
        own = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = own.split(".")[: len(own.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                bound = _bound_names(module_file(base, package))
                subs = [f"{base}.{alias.name}" for alias in node.names
                        if alias.name not in bound]
                wanted = [m for m in subs if module_file(m, package) is not None]
                if len(wanted) < len(subs):
                    wanted.append(base)
            else:
                continue
            for module in wanted:
                found = module_file(module, package)
                if found is not None and found != path:
                    targets.add(module_name(found, repo))
        graph[name] = targets
    return graph


def mutual_imports(repo: Path = ROOT) -> list[str]:
    graph = import_graph(repo)
    return sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                  if a < b and a in graph.get(b, set()))


def job_internals(repo: Path = ROOT) -> list[str]:
    """Imports of another job's modules: jobs/diff/html.py may use `netgen.jobs.draw` (its
    package interface) but not `netgen.jobs.draw.layout`."""
    problems = []
    for name, targets in import_graph(repo).items():
        parts = name.split(".")
        if parts[:2] != ["netgen", "jobs"] or len(parts) < 3:
            continue
        for target in targets:
            tparts = target.split(".")
            if tparts[:2] == ["netgen", "jobs"] and len(tparts) > 3 and tparts[2] != parts[2]:
                problems.append(f"{name} imports {target}, an internal module of job "
                                f"{tparts[2]} (import netgen.jobs.{tparts[2]} instead)")
    return sorted(problems)


def test_no_two_modules_import_each_other():
    assert mutual_imports() == []


def test_no_job_imports_another_jobs_internals():
    assert job_internals() == []


def test_analysis_imports_no_format_job_or_command():
    for path in (PACKAGE / "analysis").rglob("*.py"):
        for _, module in imported_modules(path):
            assert folder_of(module) in (None, "", "arch", "analysis"), (path, module)


def _fake_repo(tmp_path: Path) -> Path:
    fake_root = tmp_path / "repo"
    for path in PACKAGE.rglob("*.py"):
        target = fake_root / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    return fake_root


def test_a_mutual_import_and_a_reach_into_a_job_are_caught(tmp_path):
    fake_root = _fake_repo(tmp_path)
    result = fake_root / "netgen" / "jobs" / "diff" / "result.py"
    result.write_text(result.read_text() + "\nfrom netgen.jobs.diff.compare import compare\n")
    assert mutual_imports(fake_root) == ["netgen.jobs.diff.compare <-> netgen.jobs.diff.result"]
    html = fake_root / "netgen" / "jobs" / "diff" / "html.py"
    html.write_text(html.read_text() + "\nfrom netgen.jobs.draw.layout import picture\n")
    assert job_internals(fake_root) == [
        "netgen.jobs.diff.html imports netgen.jobs.draw.layout, an internal module of job draw "
        "(import netgen.jobs.draw instead)"]


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
    ("jobs", "from netgen.commands.options import spec_from", "jobs/ may import analysis, arch, caffe"),
    ("onnx", "from ..caffe.proto import NetParameter", "onnx/ may import arch, storage"),
    ("analysis", "from netgen.jobs.diff import compare", "analysis/ may import arch"),
    ("analysis", "    from netgen.onnx.reader import read_onnx", "analysis/ may import arch"),
])
def test_a_crossing_import_is_caught(tmp_path, folder, line, why):
    """The checker itself, on a copy of the package with one bad import added."""
    fake_root = _fake_repo(tmp_path)
    bad = fake_root / "netgen" / folder / "crossing.py"
    body = f"def f():\n{line}\n" if line.startswith(" ") else f"{line}\n"
    bad.write_text(body)
    found = crossings(fake_root)
    assert len(found) == 1 and found[0].startswith(f"netgen/{folder}/crossing.py:")
    assert why in found[0]
