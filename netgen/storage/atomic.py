"""Atomic file writes: a reader (or a killed build) never sees a truncated file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from netgen.errors import NetgenError


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename it into place.

    The rename is atomic on POSIX only within one file system, hence the same folder.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_writable_file(path: str | os.PathLike, option: str, example: str) -> Path:
    """A file `option` (e.g. "-o", "--html") may write, checked before any work is done, so a
    bad path costs nothing and leaves nothing: not a folder, in a folder that exists and can
    be written to. `example` is a file name to suggest."""
    target = Path(path)
    if target.is_dir():
        raise NetgenError(f"{option} {path} is a folder; give a file name such as {example}")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise NetgenError(f"{option} {path}: no such folder {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise NetgenError(f"{option} {path}: cannot write to {parent}: permission denied")
    return target
