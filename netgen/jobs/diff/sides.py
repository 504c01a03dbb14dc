"""The two things `diff` compares, read by netgen.jobs.network (a name, a build folder, a
prototxt or an ONNX file, as every command takes a network) into a `Side`
(netgen.analysis.network); load_side stays here for the callers that know it by this name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from netgen.analysis.network import Side

if TYPE_CHECKING:
    from netgen.arch.spec import ArchSpec


def parse_spec_name(name: str) -> "ArchSpec":
    """The ArchSpec of a network name (netgen.jobs.network's)."""
    from netgen.jobs.network import parse_spec_name as parse

    return parse(name)


def load_side(arg: str, caffemodel: str | os.PathLike | None = None, seed: int = 0,
              input_shape: tuple[int, ...] | None = None) -> Side:
    """A name, build folder, prototxt or ONNX file: netgen.jobs.network.load_network."""
    from netgen.jobs.network import load_network

    return load_network(arg, caffemodel=caffemodel, seed=seed, input_shape=input_shape)
