"""The one thing setup.cfg cannot say: packages are discovered under netgen/, and the
top-level templates/ folder ships as the package netgen.templates beside them."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["netgen", "netgen.*"]) + ["netgen.templates"],
      package_dir={"netgen.templates": "templates"})
