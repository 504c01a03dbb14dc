"""`netgen list`: the paper's networks, then the residual family, the CIFAR-10 nets with
ImageNet stages and ArcFace's face-recognition IResNets, with the names build and diff
accept."""

from __future__ import annotations

import json

import click

from netgen.arch.builder import build
from netgen.jobs.build import summary
from netgen.jobs.paper import family_specs, imagenet_stages_specs, iresnet_specs, paper_specs

SECTIONS = (("paper", "He et al. (CVPR 2016)", paper_specs),
            ("family", "the residual family: pre-activation (ECCV 2016), ResNeXt, Wide ResNets, "
                       "SE-ResNet/ResNeXt (timm's, and SENet's Caffe layout: -stride1x1-msrapool"
                       ", -msrapool), ResNet-C/D (timm's *c, *d), timm's ECA nets, tiered "
                       "stems (*t), Res2Net and ResNet-RS (ImageNet ones with "
                       "torchvision's pool1: pad 1, rounding down, unless -msrapool), CIFAR-10 "
                       "ResNeXt-29 (the ResNeXt paper's; -stem1x1: the PyTorch CIFAR code's)",
             family_specs),
            ("imagenet-stages", "CIFAR-10 with ImageNet stages: conv1 3x3, no pool1, Table 1's "
                                "stages (the PyTorch CIFAR code's ResNet18..152, PreActResNet18: "
                                "-nofinalbn, SENet18: preseresnet18-...-stembn-nofinalbn)",
             imagenet_stages_specs),
            ("faces", "face recognition: ArcFace's IResNets (insightface's iresnet18..200; "
                      "112x112 faces, improved blocks with PReLU, a 512-d embedding)",
             iresnet_specs))


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_networks(as_json: bool) -> int:
    """The paper's networks, then the family, CIFAR-10 with ImageNet stages and ArcFace's
    IResNets: name,
    dataset, depth, block, shortcut, parameters, multiply-adds (--json adds stem_pool:
    msra, torchvision or null)."""
    rows = []
    for section, _, specs in SECTIONS:
        for spec in specs():
            info = summary(spec, build(spec))
            # an IResNet keeps ImageNet's widths (its spec's dataset) but trains on faces
            dataset = "faces" if spec.iresnet else spec.dataset
            rows.append({"name": spec.name, "section": section, "dataset": dataset,
                         "depth": spec.depth, "block": spec.block_kind,
                         "shortcut": spec.shortcut or "plain", "stem_pool": spec.stem_pool,
                         "parameters": info["parameters"], "multiply_adds": info["multiply_adds"]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    width = max(24, *(len(row["name"]) for row in rows))
    for section, title, _ in SECTIONS:
        if section != SECTIONS[0][0]:
            click.echo("")
        click.echo(f"{title}:")
        click.echo(f"{'name':<{width}} {'dataset':<9} {'depth':>5} {'block':<17} {'shortcut':<8} "
                   f"{'parameters':>12} {'mult-adds':>10}")
        for row in rows:
            if row["section"] == section:
                click.echo(f"{row['name']:<{width}} {row['dataset']:<9} {row['depth']:>5} "
                           f"{row['block']:<17} {row['shortcut']:<8} {row['parameters']:>12,} "
                           f"{row['multiply_adds'] / 1e9:>9.3f}G")
    return 0
