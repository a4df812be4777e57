"""The errors the command line reports as one line (imports nothing of dazzle)."""

from __future__ import annotations

from typing import Any

__all__ = ["ParameterError"]


class ParameterError(ValueError):
    """An unknown parameter name or an invalid parameter value (also a scheduler or cluster
    profile that cannot be used: :class:`dazzle.cluster.SchedulerError`)."""

    def __init__(self, message: str, name: str | None = None, value: Any = None):
        super().__init__(message)
        self.name = name
        self.value = value
