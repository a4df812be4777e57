"""The errors the command line reports as one line (imports nothing of dazzle)."""

from __future__ import annotations

from typing import Any

__all__ = ["InputError", "OutputError", "ParameterError"]


class ParameterError(ValueError):
    """An unknown parameter name or an invalid parameter value (also a scheduler or cluster
    profile that cannot be used: :class:`dazzle.cluster.SchedulerError`)."""

    def __init__(self, message: str, name: str | None = None, value: Any = None):
        super().__init__(message)
        self.name = name
        self.value = value


class InputError(ValueError):
    """A bad input file.  ``str(err)`` is one line: ``"<path>[EXT,n]: <what is wrong>"`` (or
    ``"<path>: ..."`` for file-level problems).  ``.path`` and ``.ext`` hold the parts."""

    def __init__(self, message: str, *, path: str | None = None, ext: Any = None):
        super().__init__(message)
        self.path = path
        self.ext = ext


class OutputError(InputError):
    """An output that cannot be written where the user asked (a read-only folder, a product
    that would replace an input, another run writing the same products).  One line, like
    :class:`InputError`."""
