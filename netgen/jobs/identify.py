"""`netgen identify FILE`: the netgen name of the architecture in a file.

The spec is read off the file's canonical analysis (netgen.analysis.identify), built, and
compared with the file exactly as `diff` compares two networks: the file is that name only
when diff would call the two EQUIVALENT, and the representation notes are diff's. When they
differ, the name read off the file is the closest one and diff's findings say what differs;
when not even a closest spec can be read, the paper's and the family's networks are tried
and the one with the fewest findings is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from netgen.analysis.identify import (canonical_parameters, infer_spec, nearest_listed,
                                      outline_distance, spec_space)
from netgen.analysis.network import Side
from netgen.analysis.topology import Analysis, analyse
from netgen.arch.spec import BASE_WIDTH, ArchSpec, make_spec
from netgen.errors import NetgenError
from netgen.jobs.diff import DiffResult, compare, load_side
from netgen.jobs.network import load_network


@dataclass
class Identification:
    """What `identify` found. `name` is set when the file is that network (diff says
    EQUIVALENT); otherwise `closest` is the nearest netgen network and `findings` what
    differs from it."""

    source: str
    closest: str
    build: list[str]
    equivalent: bool
    notes: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    misfits: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.closest if self.equivalent else None

    def to_json(self) -> dict:
        return {"source": self.source, "name": self.name, "closest": self.closest,
                "equivalent": self.equivalent, "build": self.build, "notes": self.notes,
                "findings": self.findings, "misfits": self.misfits}

    def lines(self) -> list[str]:
        if self.equivalent:
            out = [f"{self.source}: {self.closest}", "build: " + " ".join(self.build)]
            if self.notes:
                out.append("representation (as diff reports it, not compared):")
                out += [f"  - {note}" for note in self.notes]
            return out
        out = [f"{self.source}: no netgen network; the closest is {self.closest} "
               f"({len(self.findings)} difference{'s' if len(self.findings) != 1 else ''})",
               "build: " + " ".join(self.build), "differences (as diff reports them):"]
        for finding in self.findings:
            out.append(f"  - {finding['text']}")
            out += [f"      {line}" for line in finding["lines"]]
        return out


def build_command(spec: ArchSpec) -> list[str]:
    """The shortest `netgen build` options that make `spec`: the fields the name scheme
    always states, then each defaulted field only where the default is not the spec's."""
    args = ["netgen", "build"]
    kwargs: dict = {"dataset": spec.dataset}
    if spec.dataset != "imagenet":
        args += ["--dataset", spec.dataset]
    if spec.imagenet_stages:
        args.append("--imagenet-stages")
        kwargs["imagenet_stages"] = True
    if spec.iresnet:  # first: the layout table and the defaults depend on it
        args.append("--iresnet")
        kwargs["iresnet"] = True
    if spec.is_paper_layout:
        args += ["--depth", str(spec.depth)]
        kwargs["depth"] = spec.depth
    else:
        args += ["--stages", ",".join(map(str, spec.stages)), "--block", spec.block]
        kwargs.update(stages=spec.stages, block=spec.block)
    if spec.plain:
        args.append("--plain")
        kwargs["plain"] = True
    # --tiered-stem is a deep stem of its own widths: it stands for --deep-stem.
    stem = ("--tiered-stem", "tiered_stem") if spec.tiered_stem else ("--deep-stem", "deep_stem")
    for flag, attr in (stem, ("--avg-down", "avg_down"), ("--eca", "eca")):
        if getattr(spec, attr):
            args.append(flag)
            kwargs[attr] = True
    if spec.se_reduction:
        args += ["--se", str(spec.se_reduction)]
        kwargs["se"] = spec.se_reduction
    if spec.res2net_scale:
        args += ["--res2net-scale", str(spec.res2net_scale)]
        kwargs["res2net_scale"] = spec.res2net_scale
    if spec.preact:
        args.append("--preact")
        kwargs["preact"] = True
    if spec.stem_bn:
        args.append("--stem-bn")
        kwargs["stem_bn"] = True
    if spec.groups != 1:
        args += ["--groups", str(spec.groups)]
        kwargs["groups"] = spec.groups
    if spec.wide_factor:
        args += ["--width-factor", str(spec.wide_factor)]
        kwargs["width_factor"] = spec.wide_factor
    elif spec.width_per_group != BASE_WIDTH:
        args += ["--width-per-group", str(spec.width_per_group)]
        kwargs["width_per_group"] = spec.width_per_group
    options = (("num_classes", "--classes"), ("input_size", "--input-size"),
               ("shortcut", "--shortcut"), ("stride_in", "--stride-in"),
               ("stem_pool", "--stem-pool"), ("se_width", "--se-width"),
               ("stem_kernel", "--stem-kernel"), ("res2net_width", "--res2net-width"),
               ("conv1_bias", None), ("final_bn", None))
    for attr, flag in options:
        if getattr(make_spec(**kwargs), attr) == getattr(spec, attr):
            continue
        value = getattr(spec, attr)
        kwargs[attr] = value
        if attr == "final_bn":
            args.append("--final-bn" if value else "--no-final-bn")
        elif flag is None:
            args.append("--conv1-bias" if value else "--no-conv1-bias")
        else:
            args += [flag, str(value)]
    if make_spec(**kwargs) != spec:  # a field this function does not know yet
        raise NetgenError(f"{spec.name}: no `netgen build` options found for it")
    return args


@dataclass(frozen=True, order=True)
class Score:
    """How far a candidate is from the file, compared in this order: the features of its
    outline that differ (outline_distance: a stem that downsamples or not, the block kind,
    the wiring, SE, grouped convolutions: what a person names a network by), the aligned ops
    that differ (an op on one side only, one whose attributes or shortcut differ, the input),
    the difference in learned parameters as the architecture has them
    (canonical_parameters), and last the ops that differ only in a per-channel shift (a
    bias, the least of differences)."""

    outline: int
    ops: int
    parameters: int
    shifts: int

    @staticmethod
    def of(result: DiffResult) -> "Score":
        ops = shifts = 0
        for row in result.rows:
            if row.tag != "equal" or row.shortcut_difference:
                ops += 1
            elif row.differences:
                if set(row.differences) <= {"shift"}:
                    shifts += 1
                else:
                    ops += 1
        ops += result.input_difference is not None
        # A selective-kernel unit on one side stands for a convolution and its ReLU on the
        # other: one op that differs, not three (diff says it in one finding too).
        alone = [(row.a or row.b).op.type for row in result.rows if row.tag != "equal"]
        ops -= min(2 * alone.count("SK"), alone.count("Conv") + alone.count("ReLU"))
        return Score(outline_distance(result.a, result.b), ops,
                     abs(canonical_parameters(result.a) - canonical_parameters(result.b)), shifts)


def closest(side: Side, analysis: Analysis, candidates: list[ArchSpec]
            ) -> tuple[ArchSpec, DiffResult]:
    """The candidate with the least structural difference from the file (Score; the earlier
    candidate on a tie, the spec read off the file first). An EQUIVALENT one ends the search."""
    best = None
    for spec in candidates:
        result = compare(side, load_side(spec.name), left=analysis)
        if result.equivalent:
            return spec, result
        score = Score.of(result)
        if best is None or score < best[0]:
            best = (score, spec, result)
    if best is None:
        raise NetgenError(f"{side.label}: no netgen network to compare it with")
    return best[1], best[2]


def listed_specs() -> list[ArchSpec]:
    """What `netgen list` shows: the paper's networks, the family's, the CIFAR code's, the
    face-recognition IResNets."""
    from netgen.jobs.paper import family_specs, imagenet_stages_specs, iresnet_specs, paper_specs

    return paper_specs() + family_specs() + imagenet_stages_specs() + iresnet_specs()


def identify(arg: str, caffemodel: str | os.PathLike | None = None,
             input_shape: tuple[int, ...] | None = None) -> Identification:
    """Name the architecture of a network: an ONNX file, a prototxt, a build folder (or a
    name, which names itself)."""
    side = load_network(arg, caffemodel=caffemodel, input_shape=input_shape)
    analysis = analyse(side, canonical=True)
    guess = infer_spec(analysis)
    result = None
    if guess.spec is not None:
        spec = guess.spec
        result = compare(side, load_side(spec.name), left=analysis)
    if result is None or not result.equivalent:
        candidates = spec_space(guess)
        candidates += nearest_listed(analysis, listed_specs())
        spec, result = closest(side, analysis, candidates)
    return Identification(arg, spec.name, build_command(spec), result.equivalent,
                          result.notes, result.findings, guess.misfits)
