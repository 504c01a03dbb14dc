"""All-or-nothing replacement of a build's files in an existing folder, even across a kill.

`write_atomic` makes each file either old or new, but a build is several files: a build
killed between two renames would leave a new deploy.prototxt beside the old caffemodel.
Here the new files are first staged under hidden temporary names in the same folder
(`.deploy.prototxt.<pid>.<random>.tmp`, written and fsynced), then one small journal,
`.netgen-commit.json`, is written atomically: its appearance is the commit point. The
renames and removals it lists follow, then it is deleted.

- Killed before the journal exists: the old files are untouched; the staged temporaries are
  orphans of a dead process, and the next build into the folder removes them.
- Killed after: the next build (or anyone calling `recover`) finishes the journal's renames,
  so the folder holds the complete new build. Every step is idempotent, so a kill during
  recovery is recovered the same way.

A lock on the folder (flock) keeps two netgen processes from committing into it at once.
Only names netgen writes are ever touched: a journal naming anything else is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from netgen.errors import NetgenError

try:  # POSIX only; elsewhere commits are still staged and journaled, just not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

JOURNAL = ".netgen-commit.json"
# Temporary names: ours carry the writing process's id so that a later build can tell an
# orphan (its process is gone) from a file another build is writing right now.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Exclusive flock on the folder itself for the duration (blocks while another holds it)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - file systems without flock (some NFS)
            pass  # best effort: the journal still makes the commit all-or-nothing
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _stage(folder: Path, name: str, payload: bytes) -> str:
    temp = temp_name(name)
    fd = os.open(folder / temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / temp)
        raise
    return temp


def _write_journal(folder: Path, journal: dict) -> None:
    temp = _stage(folder, JOURNAL.lstrip("."), json.dumps(journal, sort_keys=True).encode())
    os.replace(folder / temp, folder / JOURNAL)  # the commit point
    _fsync_dir(folder)


def _load_journal(folder: Path, allowed: frozenset[str]) -> dict | None:
    path = folder / JOURNAL
    try:
        journal = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NetgenError(f"{path}: unreadable commit journal of an interrupted build ({exc}); "
                          "remove it and build again") from None
    ok = (isinstance(journal, dict) and isinstance(journal.get("rename"), dict)
          and isinstance(journal.get("remove"), list)
          and all(k in allowed and isinstance(v, str) and _TEMP.match(v)
                  and _TEMP.match(v).group("name") == k for k, v in journal["rename"].items())
          and all(n in allowed for n in journal["remove"]))
    if not ok:
        raise NetgenError(f"{path}: a commit journal netgen did not write (it names files other "
                          "than a build's); remove it and build again")
    return journal


def _roll_forward(folder: Path, journal: dict) -> None:
    for final, temp in journal["rename"].items():
        with contextlib.suppress(FileNotFoundError):  # already renamed before a kill
            os.replace(folder / temp, folder / final)
    for stale in journal["remove"]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / stale)
    _fsync_dir(folder)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / JOURNAL)
    _fsync_dir(folder)


def _orphans(folder: Path, allowed: frozenset[str]) -> list[Path]:
    """Our temporaries in `folder` whose writing process is gone."""
    found = []
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if (match and (match.group("name") in allowed or "." + match.group("name") == JOURNAL)
                and not _alive(int(match.group("pid"))) and entry.is_file()):
            found.append(entry)
    return found


def recover(folder: str | os.PathLike, allowed: Iterable[str]) -> list[str]:
    """Finish an interrupted commit in `folder` and remove orphaned temporaries.

    `allowed` are the file names a build may write. Returns what was done, for messages.
    """
    folder = Path(folder)
    allowed = frozenset(allowed)
    done = []
    with locked(folder):
        journal = _load_journal(folder, allowed)
        if journal is not None:
            _roll_forward(folder, journal)
            done.append(f"finished the interrupted build ({len(journal['rename'])} files)")
        orphans = _orphans(folder, allowed)
        for orphan in orphans:
            with contextlib.suppress(FileNotFoundError):
                orphan.unlink()
        if orphans:
            done.append(f"removed {len(orphans)} temporary file(s) of an interrupted build")
    return done


def commit_files(folder: str | os.PathLike, files: dict[str, bytes],
                 allowed: Iterable[str]) -> None:
    """Replace `files` in the existing `folder` all-or-nothing; remove the other `allowed`
    names present, so that the folder never mixes two builds."""
    folder = Path(folder)
    allowed = frozenset(allowed) | frozenset(files)
    recover(folder, allowed)
    staged: dict[str, str] = {}
    with locked(folder):
        try:
            for name, payload in files.items():
                staged[name] = _stage(folder, name, payload)
            stale = sorted(n for n in allowed if n not in files and (folder / n).is_file())
            journal = {"version": 1, "rename": staged, "remove": stale}
            _write_journal(folder, journal)
        except BaseException:
            for temp in staged.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / temp)
            raise
        _roll_forward(folder, journal)


# --------------------------------------------------------------------------- new folders


def staging_prefix(target: Path) -> str:
    """mkdtemp prefix of the sibling a new build folder is assembled in."""
    return f".{target.name}.{os.getpid()}."


def remove_dead_staging(target: Path, allowed: Iterable[str]) -> list[str]:
    """Staging siblings of `target` (`.<name>.<pid>.<random>.tmp`) left by killed builds.

    Only folders whose writing process is gone and that hold nothing but build files (or
    their temporaries) are removed: never a user's folder that happens to look similar.
    """
    allowed = frozenset(allowed)
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _alive(int(match.group("pid"))) or not entry.is_dir() \
                or entry.is_symlink():
            continue
        try:
            contents = list(entry.iterdir())
        except OSError:
            continue
        if all(c.is_file() and (c.name in allowed or (_TEMP.match(c.name) or _MKSTEMP.match(c.name)))
               for c in contents):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


# write_atomic's own temporaries (tempfile.mkstemp: `.name.<8 random chars>.tmp`)
_MKSTEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def write_folder(out: Path, files: dict[str, bytes], allowed: Iterable[str]) -> None:
    """All of `files` in `out` or none, even if killed: an existing folder gets the journaled
    commit above, a new one is assembled in a staging sibling and renamed into place.

    `allowed` names every file a writer of this kind of folder may leave (what recovery and
    the clean-up of dead staging folders may touch)."""
    import tempfile

    from netgen.storage.atomic import write_atomic

    allowed = frozenset(allowed)
    try:
        remove_dead_staging(out, allowed)
        if out.is_dir():
            commit_files(out, files, allowed)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(out), suffix=".tmp", dir=out.parent))
        try:
            for name, payload in files.items():
                write_atomic(staging / name, payload)
            os.chmod(staging, 0o755)
            os.rename(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise NetgenError(f"cannot write {out}: {exc.strerror or exc}") from exc
