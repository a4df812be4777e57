"""Package layout (the metadata is in pyproject.toml).

The repository keeps ``deploy/`` (cluster profiles and scripts) and ``workflows/`` (parameter
files) at its top level; the wheel ships them inside the package, as ``dazzle/deploy`` and
``dazzle/workflows``, so that ``--scheduler profile:slurm`` and ``--config workflows/...`` find
them after ``pip install``.  :mod:`dazzle.resources` finds them in both layouts.
"""

from setuptools import find_packages, setup

SHIPPED = {"dazzle.deploy": "deploy", "dazzle.workflows": "workflows"}

setup(
    packages=find_packages(include=["dazzle", "dazzle.*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={"dazzle": ["data/*.fits", "data/*.md"],
                  "dazzle.deploy": ["*.yaml", "*.sh", "*.md"],
                  "dazzle.workflows": ["*.cfg", "*.md"]},
    include_package_data=False,
)
