"""`python -m netgen ...`, the same as the `netgen` console script."""

from netgen.commands.cli import console

if __name__ == "__main__":
    console()
