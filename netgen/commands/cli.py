"""The `netgen` console script: a click group whose commands live in netgen.commands.

Errors the user can fix (NetgenError, click's usage errors) become one line on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from netgen import __version__
from netgen.errors import NetgenError

# (module, attribute) of every command, in the order `netgen --help` lists them.
COMMANDS = [
    ("netgen.commands.build", "build"),
    ("netgen.commands.listing", "list_networks"),
    ("netgen.commands.summary", "summary"),
    ("netgen.commands.validate", "validate"),
    ("netgen.commands.bench", "bench"),
    ("netgen.commands.convert", "convert"),
    ("netgen.commands.diff", "diff"),
    ("netgen.commands.identify", "identify"),
    ("netgen.commands.draw", "draw"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netgen")
def cli() -> None:
    """Generate, convert, validate and compare the residual networks of He et al. (CVPR 2016)."""


for _module, _attr in COMMANDS:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn user errors into one line and exit code 2."""
    try:
        result = cli.main(args=argv, prog_name="netgen", standalone_mode=False)
    except NetgenError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.exceptions.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    if isinstance(result, int):
        return result
    return 0


def console() -> None:
    """Entry point of the console script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
