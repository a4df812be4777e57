"""The files dazzle ships beside its code: ``deploy/`` (cluster profiles, jobqueue settings,
batch scripts) and ``workflows/`` (parameter files).

In a checkout (and an editable install) they are the repository's top-level folders; in a
wheel they are inside the package (``dazzle/deploy``, ``dazzle/workflows``; see setup.py).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
SHIPPED = ("deploy", "workflows")


def shipped_dir(name: str) -> Path:
    """The folder ``name`` (``"deploy"`` or ``"workflows"``): inside the installed package if it
    is there (a wheel), else the repository's top-level one (a checkout).  The path is returned
    even when neither exists (a broken install): its use then names the missing file."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not one of dazzle's shipped folders {SHIPPED}")
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


def shipped_file(name: str, *parts: str) -> Path:
    """A file of a shipped folder, e.g. ``shipped_file("deploy", "profiles.yaml")``."""
    return shipped_dir(name).joinpath(*parts)
