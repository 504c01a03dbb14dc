"""`netgen list`: the paper's networks, with the names build and diff accept."""

from __future__ import annotations

import json

import click

from netgen.arch.builder import build
from netgen.jobs.build import summary
from netgen.jobs.paper import paper_specs


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_networks(as_json: bool) -> int:
    """The paper's networks: name, dataset, depth, shortcut, parameters, multiply-adds."""
    rows = []
    for spec in paper_specs():
        info = summary(spec, build(spec))
        rows.append({"name": spec.name, "dataset": spec.dataset, "depth": spec.depth,
                     "block": spec.block, "shortcut": spec.shortcut or "plain",
                     "parameters": info["parameters"], "multiply_adds": info["multiply_adds"]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    click.echo(f"{'name':<24} {'dataset':<9} {'depth':>5} {'block':<10} {'shortcut':<8} "
               f"{'parameters':>12} {'mult-adds':>10}")
    for row in rows:
        click.echo(f"{row['name']:<24} {row['dataset']:<9} {row['depth']:>5} {row['block']:<10} "
                   f"{row['shortcut']:<8} {row['parameters']:>12,} "
                   f"{row['multiply_adds'] / 1e9:>9.3f}G")
    return 0
