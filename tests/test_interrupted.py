"""Nothing lost: a build killed at any moment leaves the old build or the new one, complete.

Two kinds of evidence. (1) Every step of a commit is interrupted on purpose: a forked child
replaces a folder's files and dies (os._exit) right before its k-th file-system change, for
every k; the folder then holds exactly one of the two builds (after `commit.recover`, which
the next build runs, where the kill came after the commit point). (2) Real `netgen build`
processes of a large net with --weights are SIGKILLed at deterministic pseudo-random
moments, half of them timed from the moment the first file appears, into a new folder and
with --force over a complete build; every file left must be byte-identical to the old or to
the new build, all from the same one, and must load (prototxt parses, caffemodel reads,
model.onnx passes the checker, summary.json is JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from netgen.arch.spec import make_spec
from netgen.caffe import proto as caffe_proto
from netgen.jobs.build import BUILD_FILES, BuildOptions, render_files, write_build
from netgen.storage import commit

CLI = [sys.executable, "-m", "netgen.commands.cli", "build"]


# --------------------------------------------------------------------------- helpers


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: digest(data) for name, data in files.items()}


def visible(folder: Path) -> dict[str, str]:
    return {p.name: digest(p.read_bytes()) for p in folder.iterdir() if not p.name.startswith(".")}


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


_LOADED: set[tuple[str, str]] = set()


def assert_loads(folder: Path) -> None:
    """Every file present parses or loads with the tool its users would use."""
    import onnx

    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        key = (path.name, digest(path.read_bytes()))
        if key in _LOADED:
            continue
        if path.name.startswith("solver"):
            caffe_proto.parse_solver(path.read_text(), str(path))
        elif path.suffix == ".prototxt":
            caffe_proto.parse_net(path.read_text(), str(path))
        elif path.suffix == ".caffemodel":
            assert caffe_proto.read_caffemodel(path).layer
        elif path.name == "model.onnx":
            onnx.checker.check_model(onnx.load(str(path)))
        elif path.name == "summary.json":
            json.loads(path.read_text())
        elif path.suffix == ".svg":
            assert ElementTree.fromstring(path.read_text()).tag.endswith("svg")
        elif path.name != "model.onnx.data":
            raise AssertionError(f"unexpected file {path.name}")
        _LOADED.add(key)


def assert_one_build(folder: Path, builds: dict[str, dict[str, str]]) -> str:
    """The folder's visible files are exactly one of `builds`; returns which."""
    present = visible(folder)
    for label, files in builds.items():
        if present == files:
            return label
    detail = {name: [label for label, files in builds.items() if files.get(name) == h] or ["?"]
              for name, h in present.items()}
    raise AssertionError(f"{folder} mixes builds or holds a partial one: {detail}")


# --------------------------------------------------------------------------- every step


OLD = {"deploy.prototxt": b"old deploy\n", "summary.json": b'{"old": 1}\n',
       "model.caffemodel": b"old weights" * 1000, "model.onnx": b"old onnx"}
NEW = {"deploy.prototxt": b"new deploy\n", "train_val.prototxt": b"new train_val\n",
       "summary.json": b'{"new": 2}\n', "model.onnx": b"new onnx" * 500}


def _die_at(step: int) -> None:
    """In a forked child: count file-system changes, exit abruptly before change `step`."""
    calls = {"n": 0}

    def wrap(real):
        def call(*args, **kwargs):
            if calls["n"] == step:
                os._exit(137)
            calls["n"] += 1
            return real(*args, **kwargs)
        return call

    for name in ("replace", "rename", "unlink", "fsync", "open"):
        setattr(os, name, wrap(getattr(os, name)))


def _forked(step: int, action) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _die_at(step)
            action()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_commit_survives_a_kill_at_every_step(tmp_path):
    """Kill before each file-system change of a commit: old or new build, never a mix."""
    builds = {"old": build_digests(OLD), "new": build_digests(NEW)}
    outcomes = []
    for step in range(200):
        folder = tmp_path / f"step{step}"
        folder.mkdir()
        for name, data in OLD.items():
            (folder / name).write_bytes(data)
        (folder / "notes.txt").write_bytes(b"the user's own file")
        code = _forked(step, lambda: commit.commit_files(folder, NEW, BUILD_FILES))
        (folder / "notes.txt").unlink()  # never touched: checked by digest below
        before = assert_one_build(folder, builds) if not (folder / commit.JOURNAL).exists() else "journal"
        commit.recover(folder, BUILD_FILES)
        after = assert_one_build(folder, builds)
        assert hidden(folder) == [], f"step {step}: leftovers {hidden(folder)}"
        outcomes.append((step, code, before, after))
        if code == 0:
            break
    steps = [o for o in outcomes if o[1] == 137]
    assert outcomes[-1][1] == 0 and outcomes[-1][3] == "new"
    # Every outcome occurred: untouched, committed but unfinished, finished.
    assert {o[2] for o in steps} >= {"old", "journal"}, outcomes
    assert {o[3] for o in steps} == {"old", "new"}, outcomes


def test_new_folder_survives_a_kill_at_every_step(tmp_path):
    """A new folder appears complete or not at all; the staging sibling is cleaned later."""
    spec = make_spec("cifar10", 8)
    files = render_files(spec, BuildOptions(onnx=False))
    for step in range(200):
        parent = tmp_path / f"step{step}"
        parent.mkdir()
        (parent / "neighbour.txt").write_bytes(b"keep")
        target = parent / "net"
        code = _forked(step, lambda: write_build(spec, target, onnx=False))
        if target.exists():
            assert visible(target) == build_digests(files)
        # The next build into the same folder removes a killed build's staging sibling.
        write_build(spec, target, force=True, onnx=False)
        assert sorted(p.name for p in parent.iterdir()) == ["neighbour.txt", "net"]
        assert visible(target) == build_digests(files)
        if code == 0:
            break
    assert step > 3 and code == 0


def test_orphans_of_live_processes_are_left_alone(tmp_path):
    """A temporary of a process that still runs may be another build's: not removed."""
    live = tmp_path / f".deploy.prototxt.{os.getppid()}.0123abcd.tmp"
    dead_pid = 2**22 + 12345  # above the default pid_max of 4194304: never alive
    dead = tmp_path / f".deploy.prototxt.{dead_pid}.0123abcd.tmp"
    user = tmp_path / ".deploy.prototxt.backup"
    for path in (live, dead, user):
        path.write_bytes(b"x")
    assert commit.recover(tmp_path, BUILD_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, user.name])


def test_foreign_journal_is_refused(tmp_path):
    (tmp_path / commit.JOURNAL).write_text(json.dumps(
        {"version": 1, "rename": {"../../etc/passwd": ".x.1.0123abcd.tmp"}, "remove": []}))
    from netgen.errors import NetgenError

    with pytest.raises(NetgenError, match="did not write"):
        commit.recover(tmp_path, BUILD_FILES)


# --------------------------------------------------------------------------- real kills


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.0005)
    return False


def kill_builds(tmp_path: Path, depth: int, kills: int, seed: int) -> list[dict]:
    """SIGKILL `netgen build --depth D --weights` `kills` times each way; returns the log."""
    spec = make_spec("imagenet", depth)
    old = render_files(spec, BuildOptions(weights=True, seed=0))
    new = render_files(spec, BuildOptions(weights=True, seed=1))
    builds = {"old": build_digests(old), "new": build_digests(new)}
    base = [f"--depth={depth}", "--weights"]
    rng = random.Random(seed)

    # The reference build's duration bounds the uniform kill times; the time from its first
    # file appearing to its end bounds the kills timed from the first write.
    start = time.monotonic()
    reference = tmp_path / "reference"
    proc = _spawn(base + ["--seed=0", f"--out={reference}"])
    _wait_for(lambda: any(p.name.startswith(".reference.") for p in tmp_path.iterdir()), 600)
    writing = time.monotonic()
    assert proc.wait() == 0
    duration = time.monotonic() - start
    write_window = time.monotonic() - writing
    assert visible(reference) == builds["old"]
    assert_loads(reference)

    log = []
    for run in range(2 * kills):
        forced = run % 2 == 1
        folder = tmp_path / f"run{run}"
        if forced:
            folder.mkdir()
            for name, data in old.items():
                (folder / name).write_bytes(data)
        args = base + ["--seed=1", f"--out={folder}"] + (["--force"] if forced else [])
        timed_from_write = run % 4 >= 2
        began = time.monotonic()
        proc = _spawn(args)
        if timed_from_write:  # kill shortly after the first file of this build appears
            watch = folder if forced else tmp_path
            prefix = "." if forced else f".{folder.name}."
            _wait_for(lambda: any(p.name.startswith(prefix) for p in watch.iterdir()), duration * 3)
            delay = rng.uniform(0.0, write_window)
        else:
            delay = rng.uniform(0.0, duration * 1.1)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        elapsed = time.monotonic() - began
        entry = {"run": run, "force": forced, "from_write": timed_from_write,
                 "kill_after_s": round(elapsed, 3), "exit": code}
        if forced:
            entry["state"] = assert_one_build(folder, builds)
            entry["leftovers"] = hidden(folder)
        elif folder.exists():
            entry["state"] = assert_one_build(folder, {"new": builds["new"]})
            entry["leftovers"] = hidden(folder)
        else:
            entry["state"] = "absent"
            entry["leftovers"] = [p.name for p in tmp_path.iterdir()
                                  if p.name.startswith(f".{folder.name}.")]
        if folder.exists():
            assert_loads(folder)
        # The next build cleans up whatever the kill left and completes.
        assert _spawn(args + ["--force"]).wait() == 0
        assert visible(folder) == builds["new"] and hidden(folder) == []
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{folder.name}.")]
        log.append(entry)
    log.append({"duration_s": round(duration, 2), "write_window_s": round(write_window, 3)})
    return log


def _report(log: list[dict]) -> str:
    *runs, times = log
    lines = [f"full build {times['duration_s']} s, of which writing {times['write_window_s']} s",
             f"{'run':>3} {'mode':<6} {'timing':<10} {'killed at':>9} {'exit':>4} {'state':<7} "
             "hidden leftovers"]
    for e in runs:
        lines.append(f"{e['run']:>3} {'force' if e['force'] else 'new':<6} "
                     f"{'write+' if e['from_write'] else 'uniform':<10} {e['kill_after_s']:>8.2f}s "
                     f"{e['exit']:>4} {e['state']:<7} {len(e['leftovers'])}")
    return "\n".join(lines)


def test_killed_builds_leave_old_or_new(tmp_path):
    """ResNet-50 with --weights, killed 6 times (3 new folder, 3 --force)."""
    log = kill_builds(tmp_path, 50, kills=3, seed=2016)
    print(_report(log))
    assert len(log) == 7


@pytest.mark.slow
def test_killed_resnet152_builds_leave_old_or_new(tmp_path):
    """ResNet-152 with --weights (480 MB of files), killed 16 times."""
    log = kill_builds(tmp_path, 152, kills=8, seed=152)
    print(_report(log))
    assert len(log) == 17
