"""Files on disk: atomic writes (`atomic.py`: temporary file, then rename) and the
journaled all-or-nothing commit of a build folder (`commit.py`).

May import: `netgen.errors` only; everything that writes a file goes through here.
"""
