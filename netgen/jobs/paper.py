"""The paper's networks: which ones generated/ holds, and `python -m netgen.jobs.paper generate DIR`.

The family (family_specs) and the CIFAR-10 nets with ImageNet stages (imagenet_stages_specs)
are listed by `netgen list` after them but not generated: generated/ holds the paper's
networks only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from netgen.arch.spec import (CIFAR_PAPER_DEPTHS, FAMILY_NAMES, IMAGENET_LAYOUTS,
                              IMAGENET_STAGES_NAMES, IRESNET_NAMES, ArchSpec, make_spec,
                              spec_from_name)
from netgen.jobs.build import write_build
from netgen.jobs.draw import paper_figures
from netgen.storage.atomic import write_atomic


def paper_specs() -> list[ArchSpec]:
    """ImageNet 18..152 with A/B/C, plain-18/34; CIFAR-10 20..1202 with A, plain-20..110."""
    specs = []
    for depth in IMAGENET_LAYOUTS:
        specs += [make_spec("imagenet", depth, shortcut) for shortcut in "ABC"]
    specs += [make_spec("imagenet", depth, plain=True) for depth in (18, 34)]
    specs += [make_spec("cifar10", depth, "A") for depth in CIFAR_PAPER_DEPTHS]
    specs += [make_spec("cifar10", depth, plain=True) for depth in CIFAR_PAPER_DEPTHS[:5]]
    return specs


def family_specs() -> list[ArchSpec]:
    """Pre-activation ResNet-164/1001 (CIFAR-10) and -200, torchvision's ResNeXt and Wide ResNets."""
    return [spec_from_name(name) for name in FAMILY_NAMES]


def imagenet_stages_specs() -> list[ArchSpec]:
    """CIFAR-10 with Table 1's stages: the PyTorch CIFAR code's ResNet18..152, PreActResNet18."""
    return [spec_from_name(name) for name in IMAGENET_STAGES_NAMES]


def iresnet_specs() -> list[ArchSpec]:
    """ArcFace's face-recognition IResNets, insightface's iresnet18..200."""
    return [spec_from_name(name) for name in IRESNET_NAMES]


def generate(folder: Path) -> list[str]:
    """The committed reference files: prototxt, solver, summary and drawing, no weights;
    beside the folders, the paper's figures (fig3.svg, fig5.svg)."""
    names = []
    for spec in paper_specs():
        write_build(spec, folder / spec.name, force=True, weights=False, onnx=False)
        names.append(spec.name)
    for file_name, svg in paper_figures().items():
        write_atomic(folder / file_name, svg)
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "generate":
        print("usage: python -m netgen.jobs.paper generate DIR", file=sys.stderr)
        return 2
    for name in generate(Path(argv[1])):
        print(f"wrote {Path(argv[1]) / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
