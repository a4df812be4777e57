"""Schedulers: where the graph runs.

``scheduler`` (the parameter) is ``threads`` (default), ``processes``, ``synchronous``, or the
address of a running ``distributed`` scheduler (``tcp://host:port``).  Local runs can show a
progress bar (dask's diagnostics); distributed runs show the dashboard.
"""

from __future__ import annotations

import contextlib
import sys

import dask


def compute(objs, scheduler="threads", *, progress=False):
    """Compute the delayed objects ``objs`` on ``scheduler``; returns their values."""
    scheduler = str(scheduler or "threads")
    if scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        from distributed import Client, progress as dprogress

        with Client(scheduler) as client:
            futures = client.compute(objs)
            if progress:
                print(f"dazzle: dashboard at {client.dashboard_link}", file=sys.stderr)
                dprogress(futures)
            return client.gather(futures)
    if scheduler not in ("threads", "processes", "synchronous", "sync", "single-threaded"):
        raise ValueError(f"scheduler must be threads, processes, synchronous or tcp://host:port; got {scheduler!r}")
    ctx = contextlib.nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        ctx = ProgressBar(out=sys.stderr)
    with ctx:
        return list(dask.compute(*objs, scheduler=scheduler))
