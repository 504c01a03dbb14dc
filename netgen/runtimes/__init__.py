"""The runtimes people deploy netgen's files to, run as their users run them.

Each module drives one runtime's own Python wheel (an optional extra: netgen never needs
it) and returns plain numpy outputs by blob name, so validate can hold them against ONNX
Runtime. Nothing here knows the IR: the files are the interface, as they are for users,
so this folder may import nothing else of netgen's (jobs and commands import it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util


class RuntimeMissing(Exception):
    """The runtime's wheel is not installed; the message names the extra that brings it."""


class RuntimeFailed(Exception):
    """The runtime refused or crashed on the files; the message is its own last word."""


def installed_version(distribution: str, *modules: str) -> str | None:
    """The wheel's version where all its modules import, without importing them (MNN prints
    to stdout when imported, which --json output must not carry)."""
    if any(importlib.util.find_spec(module) is None for module in modules):
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
