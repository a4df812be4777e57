"""Schedulers: where the graph runs.

:func:`compute` runs the pipeline's delayed objects on one of

============================  ==================================================================
``scheduler``                 runs on
============================  ==================================================================
``None`` / ``"auto"``         the caller's active ``distributed`` Client if there is one (e.g.
                              ``with Client(...):`` around ``dazzle.run``), else ``threads``
``"threads"``                 dask's threaded scheduler (one process; the kernels release the GIL)
``"processes"``               dask's process pool
``"synchronous"``             one thread, in order (debugging)
``"local"``                   a ``distributed.LocalCluster`` started for the run: ``workers``
                              processes (default: one per core) of one thread each
``"distributed"``             the active Client, else like ``"local"``
``"tcp://host:port"``         a running ``distributed`` scheduler (also ``host:port``, ``tls://``)
``"path/scheduler.json"``     a running scheduler, by its scheduler file (``dask scheduler
                              --scheduler-file``, ``dask-jobqueue``'s ``SLURMRunner``)
``"profile:NAME"`` / ``NAME``  a cluster profile from a YAML file (below)
a ``distributed.Client``      that client
============================  ==================================================================

Explicit names are honoured: ``"threads"`` runs on threads even when a Client is active.

**Profiles.**  A YAML file (``profile=`` a path, else ``$DAZZLE_PROFILES``, else
``~/.config/dazzle/profiles.yaml``, else the ``deploy/profiles.yaml`` shipped with dazzle:
:func:`dazzle.resources.shipped_file`) maps names to clusters::

    profiles:
      slurm:
        class: dask_jobqueue.SLURMCluster   # a dask_jobqueue or distributed cluster class
        # options: {queue: normal}          # keyword arguments, over dask's configuration
        jobs: 4                             # cluster.scale(jobs=4)   (or workers: N)
        # adaptive: {minimum_jobs: 1, maximum_jobs: 20}    # cluster.adapt(**adaptive) instead
        wait_for_workers: 4                 # wait for this many workers before computing
        wait_timeout: 600                   # seconds (default 300)

**dask-jobqueue's configuration.**  A dask-jobqueue class reads its settings (cores, memory,
queue, walltime ...) from dask's configuration, as for any dask-jobqueue user:
``~/.config/dask/jobqueue.yaml``, ``$DASK_CONFIG``, ``DASK_JOBQUEUE__SLURM__QUEUE``-style
variables, ``dask.config.set``.  dazzle's suggestions (``deploy/jobqueue.yaml``) are registered
as defaults under it (:func:`register_jobqueue_defaults`), and a profile's ``options`` win over
it; so a profile holds what dask-jobqueue lacks: the scaling and the wait for workers.  A
scheduler name that no profile has but that is one of dask-jobqueue's batch systems (``slurm``,
``pbs``, ``sge``, ``lsf``, ``htcondor``, ``moab``, ``oar``) starts one job of it.

A profiles file is trusted like a script: its class is imported and called with its options.
Only ``dask_jobqueue`` and ``distributed`` cluster classes are accepted; another class (e.g.
``dask_kubernetes.KubeCluster``) must be listed in ``$DAZZLE_CLUSTER_CLASSES``
(comma-separated), which a profiles file cannot set for itself.

String options may use ``${VAR}`` and ``${VAR:-default}`` (a string that expands to nothing
becomes None: the class's own default); ``~`` is expanded.  ``workers=``
overrides the scaling (``cluster.scale(n=workers)``: workers, not jobs).  The cluster is
started for the run and closed after it.  PyYAML (``profiles``) and dask-jobqueue (the HPC
classes) are needed only when a profile uses them; a ``.json`` profiles file needs neither.

**Progress and diagnostics.**  ``progress=True``: local schedulers show a progress bar
on stderr (:class:`TaskProgress`; in a log file a line at most every 10 s); distributed runs print the dashboard link (stderr) and
``distributed.progress``.  ``report=FILE`` writes Dask's ``performance_report`` (HTML); it
needs a distributed scheduler, so a local scheduler is replaced for that run by a temporary
in-process ``LocalCluster`` (threads: one worker with the same number of threads; processes:
one single-threaded worker process per core; synchronous: one worker with one thread) --
the products are the same bits.  Every run logs (logger ``dazzle``, INFO) one line per
pipeline step with its task count, wall-clock span and summed task time, from dask's
callbacks (local) or the scheduler's task stream (distributed).

Nothing here touches pixels; the products are the same bits on every scheduler because the
graph adds the chips' sums in a fixed order (:mod:`dazzle.graph`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dask
from dask.utils import key_split

from dazzle import facts
from dazzle.errors import ParameterError
from dazzle.resources import shipped_file

__all__ = [
    "LOCAL_SCHEDULERS",
    "Profile",
    "SchedulerError",
    "StepTimer",
    "tune_malloc",
    "tuned_malloc",
    "MMAP_THRESHOLD",
    "StepTimes",
    "TaskProgress",
    "active_client",
    "compute",
    "connect",
    "get_profile",
    "load_profiles",
    "new_cluster",
    "normalize",
    "processes_per_job",
    "profile_names",
    "profiles_file",
    "register_jobqueue_defaults",
    "task_prefix",
]

log = logging.getLogger("dazzle")

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
_ALIASES = {"sync": "synchronous", "single-threaded": "synchronous", "threading": "threads",
            "multiprocessing": "processes", "default": "auto"}
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://|^[\w.\-]+:\d+$")
#: where the profiles file is looked for when neither ``profile=`` nor $DAZZLE_PROFILES says
DEFAULT_PROFILES = (Path("~/.config/dazzle/profiles.yaml"), shipped_file("deploy", "profiles.yaml"))
GLUE = facts.OTHER   # dask's own small tasks (getitem, finalize, list ...): counted, not logged


class SchedulerError(ParameterError):
    """A scheduler or profile that cannot be used (bad name, missing package, bad file); a
    :class:`~dazzle.params.ParameterError`, so the command line prints it as one line."""

    def __init__(self, message):
        super().__init__(message, name="scheduler")


_error = SchedulerError


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------

@dataclass
class Profile:
    """One cluster profile: the cluster class, its keyword arguments and the scaling."""

    name: str
    cls: str
    options: dict = field(default_factory=dict)
    jobs: int | None = None
    workers: int | None = None
    adaptive: dict | None = None
    wait_for_workers: int | None = None
    wait_timeout: float = 300.0
    source: str = ""

    def expected_workers(self, processes=None):
        """How many workers to wait for before computing (0: do not wait).  ``processes``:
        worker processes per batch job (default: the profile's ``processes`` option, else 1;
        :func:`processes_per_job` asks the started cluster, whose settings may come from
        dask-jobqueue's configuration)."""
        per_job = int(processes or self.options.get("processes", 1) or 1)
        if self.wait_for_workers is not None:
            return int(self.wait_for_workers)
        if self.workers:
            return int(self.workers)
        if self.jobs:
            return int(self.jobs) * per_job
        if self.adaptive:
            lo = self.adaptive.get("minimum_jobs")
            if lo is not None:
                return int(lo) * per_job
            return int(self.adaptive.get("minimum", 0) or 0)
        return 0


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(value):
    """``${VAR}``, ``${VAR:-default}`` and ``~`` in the strings of a profile (recursively)."""
    if isinstance(value, str):
        s = _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
        if s == "" and _VAR.search(value):
            return None   # "${ACCOUNT:-}" unset: the option is left out (the class's default)
        return os.path.expanduser(s) if s.startswith("~") else s
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def profiles_file(profile=None) -> Path | None:
    """The profiles file in force: ``profile`` (a path), $DAZZLE_PROFILES, then the defaults."""
    if profile and _looks_like_file(profile):
        return Path(os.path.expanduser(str(profile)))
    env = os.environ.get("DAZZLE_PROFILES")
    if env:
        return Path(os.path.expanduser(env))
    for p in DEFAULT_PROFILES:
        p = p.expanduser()
        if p.is_file():
            return p
    return None


def _looks_like_file(s) -> bool:
    s = str(s)
    return s.lower().endswith((".yaml", ".yml", ".json")) or os.sep in s or os.path.isfile(s)


def load_profiles(path=None) -> dict[str, Profile]:
    """Every profile of the profiles file ``path`` (default: :func:`profiles_file`)."""
    path = Path(path) if path is not None else profiles_file()
    if path is None:
        raise _error("no cluster profiles file: pass profile=FILE (--profile FILE), set "
                     "$DAZZLE_PROFILES, or create ~/.config/dazzle/profiles.yaml")
    if path.exists() and not path.is_file():   # a folder, or a device that never ends
        raise _error(f"cannot read the cluster profiles file {path}: not a regular file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(f"cannot read the cluster profiles file {path}: {getattr(exc, 'strerror', None) or 'not text'}") from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise _error(f"{path}: not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    else:
        try:
            import yaml
        except ImportError:
            raise _error(f"{path}: reading YAML cluster profiles needs PyYAML "
                         "(pip install 'dazzle[cluster]' or pip install pyyaml)") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:   # its text quotes the file: only the place is reported
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise _error(f"{path}: not valid YAML{where}") from None
    doc = doc or {}
    table = doc.get("profiles", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise _error(f"{path}: expected a mapping 'profiles: {{name: {{class: ..., options: ...}}}}'")
    out = {}
    for name, spec in table.items():
        if not isinstance(spec, dict) or "class" not in spec:
            raise _error(f"{path}: profile {name!r} needs 'class' (e.g. dask_jobqueue.SLURMCluster)")
        unknown = set(spec) - {"class", "options", "jobs", "workers", "adaptive", "wait_for_workers",
                               "wait_timeout", "description"}
        if unknown:
            raise _error(f"{path}: profile {name!r}: unknown key(s) {sorted(unknown)}; allowed: class, "
                         "options, jobs, workers, adaptive, wait_for_workers, wait_timeout, description")
        spec = _expand(spec)
        adaptive = spec.get("adaptive")
        if adaptive is not None and not isinstance(adaptive, dict):
            raise _error(f"{path}: profile {name!r}: adaptive must be a mapping, e.g. "
                         "{minimum_jobs: 1, maximum_jobs: 10}")
        out[str(name)] = Profile(name=str(name), cls=str(spec["class"]), options=dict(spec.get("options") or {}),
                                 jobs=spec.get("jobs"), workers=spec.get("workers"), adaptive=adaptive,
                                 wait_for_workers=spec.get("wait_for_workers"),
                                 wait_timeout=float(spec.get("wait_timeout", 300)), source=str(path))
    return out


def profile_names(profile=None) -> set:
    """The profile names of the profiles file in force (none when there is none or it cannot
    be read) and dask-jobqueue's batch systems -- for checking a scheduler name early
    (dazzle.params)."""
    try:
        path = profiles_file(profile)
        names = set(load_profiles(path)) if path is not None else set()
    except Exception:  # noqa: BLE001 -- a broken file is reported when the run starts
        names = set()
    return names | set(JOBQUEUE_CLASSES)   # dask-jobqueue's batch systems (get_profile)


def get_profile(name, profile=None) -> Profile:
    """One profile: of the profiles file in force, else one of dask-jobqueue's batch systems.

    For the name of one of dask-jobqueue's batch systems (``slurm``, ``pbs``, ``sge``, ``lsf``,
    ``htcondor``, ``moab``, ``oar``) that no profile has: that system's cluster class with the
    settings of dask's configuration (``jobqueue.<name>``, e.g. ~/.config/dask/jobqueue.yaml),
    one job, waited for.

    Parameters
    ----------
    name : str
        The profile's name.
    profile : str or os.PathLike, optional
        The profiles file (default: :func:`profiles_file`).

    Returns
    -------
    Profile

    Raises
    ------
    SchedulerError
        If there is no such profile, or the file is missing or cannot be read.
    """
    path = profiles_file(profile)
    table = load_profiles(path) if path is not None or name not in JOBQUEUE_CLASSES else {}
    if name in table:
        return table[name]
    if name in JOBQUEUE_CLASSES:
        return Profile(name=name, cls=f"dask_jobqueue.{JOBQUEUE_CLASSES[name]}", jobs=1,
                       source=f"dask's configuration (jobqueue.{name})")
    raise _error(f"unknown scheduler or cluster profile {name!r}: use threads, processes, "
                 f"synchronous, local, tcp://host:port, a scheduler file *.json, one of the "
                 f"profiles in {path}: {', '.join(sorted(table)) or '(none)'}, or a batch system of "
                 f"dask-jobqueue's configuration ({', '.join(JOBQUEUE_CLASSES)})")


# ---------------------------------------------------------------------------------------------
# dask-jobqueue's configuration
# ---------------------------------------------------------------------------------------------

#: dask-jobqueue's batch systems: the section of its configuration -> the cluster class
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                    "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster"}
#: dazzle's defaults for dask-jobqueue's sections (jobqueue's own format), under the user's
JOBQUEUE_DEFAULTS = shipped_file("deploy", "jobqueue.yaml")
_jobqueue_lock = threading.Lock()
_jobqueue_done = []


def register_jobqueue_defaults(path=None) -> dict:
    """Add dazzle's settings for dask-jobqueue to dask's configuration as defaults, once per
    process.

    dask-jobqueue reads its settings from dask's configuration: ~/.config/dask/*.yaml, the
    folder $DASK_CONFIG, ``DASK_JOBQUEUE__SLURM__QUEUE``-style variables and ``dask.config.set``.
    Registered with :func:`dask.config.update_defaults` after dask-jobqueue's own defaults, a
    value of dazzle's file replaces only a value still at dask-jobqueue's default: whatever
    the user configured wins.

    Parameters
    ----------
    path : str or os.PathLike, optional
        dazzle's settings in dask-jobqueue's format (default :data:`JOBQUEUE_DEFAULTS`,
        ``deploy/jobqueue.yaml``: cores, processes, memory, walltime per batch system).

    Returns
    -------
    dict
        The defaults registered (empty if they were registered before).

    Raises
    ------
    SchedulerError
        If the file cannot be read.
    """
    with _jobqueue_lock:
        if _jobqueue_done:
            return {}
        import dask_jobqueue  # noqa: F401 -- registers its own defaults first
        import yaml

        path = Path(path) if path is not None else JOBQUEUE_DEFAULTS
        try:
            new = _expand(yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise _error(f"cannot read dazzle's dask-jobqueue defaults {path}: {exc}") from None
        dask.config.update_defaults(new)
        _jobqueue_done.append(str(path))
        return new


def processes_per_job(cluster, p: Profile) -> int:
    """Worker processes per batch job of a started cluster.

    Parameters
    ----------
    cluster : distributed.deploy.Cluster
        The cluster; a dask-jobqueue cluster knows it from its settings, whatever configured it.
    p : Profile
        Its profile: its ``processes`` option when the cluster does not say (else 1).

    Returns
    -------
    int
    """
    job = getattr(cluster, "_dummy_job", None)   # dask-jobqueue: a job built from its settings
    n = getattr(job, "worker_processes", None)
    return int(n or p.options.get("processes", 1) or 1)


#: packages whose cluster classes a profile may name; any other class must be listed in the
#: environment variable $DAZZLE_CLUSTER_CLASSES (comma-separated), an opt-in a profile file
#: cannot grant itself
TRUSTED_CLUSTER_PACKAGES = ("dask_jobqueue", "distributed")


def _import(dotted: str):
    mod, _, attr = dotted.rpartition(".")
    if not mod:
        raise _error(f"cluster class {dotted!r}: give the module too, e.g. dask_jobqueue.SLURMCluster")
    opted_in = dotted in {c.strip() for c in os.environ.get("DAZZLE_CLUSTER_CLASSES", "").split(",")}
    if not opted_in and mod.split(".")[0] not in TRUSTED_CLUSTER_PACKAGES:
        raise _error(f"cluster class {dotted}: a profile may name only dask_jobqueue and distributed cluster "
                     f"classes; to trust another, set DAZZLE_CLUSTER_CLASSES={dotted}")
    try:
        cls = getattr(importlib.import_module(mod), attr)
    except ImportError as exc:
        extra = " (pip install 'dazzle[hpc]' or pip install dask-jobqueue)" if mod.startswith("dask_jobqueue") else ""
        raise _error(f"cluster class {dotted}: cannot import {mod}{extra}: {exc}") from exc
    except AttributeError:
        raise _error(f"cluster class {dotted}: {mod} has no {attr}") from None
    from distributed.deploy import Cluster

    if not isinstance(cls, type) or not (opted_in or issubclass(cls, Cluster)):
        raise _error(f"cluster class {dotted}: not a cluster class (a distributed.deploy.Cluster)")
    return cls


# ---------------------------------------------------------------------------------------------
# choosing and connecting
# ---------------------------------------------------------------------------------------------

def active_client():
    """The caller's default ``distributed`` Client (``Client(...)``, ``with client.as_current()``),
    or None."""
    if "distributed" not in sys.modules:
        return None   # no client can exist without distributed imported
    try:
        from distributed import default_client

        c = default_client()
    except (ImportError, ValueError):
        return None
    return c if getattr(c, "status", "closed") in ("running", "connecting", "newly-created") else None


def normalize(scheduler, profile=None):
    """What a ``scheduler`` argument means.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        A name, an address, a scheduler file, a profile or a Client (see the module's doc).
    profile : str or os.PathLike, optional
        The profiles file, or (with ``scheduler`` left at its default) a profile name.

    Returns
    -------
    kind : str
        ``"local"``, ``"client"``, ``"address"``, ``"file"``, ``"localcluster"`` or
        ``"profile"``.
    value : object
        For ``local`` the scheduler name (threads/processes/synchronous), for ``client`` the
        Client, for ``address``/``file`` the string, for ``profile`` a :class:`Profile`; None for
        ``localcluster``.

    Raises
    ------
    SchedulerError
        If ``scheduler`` is of another type or names an unknown profile.
    """
    if scheduler is not None and not isinstance(scheduler, str):
        if hasattr(scheduler, "compute") and hasattr(scheduler, "gather"):
            return "client", scheduler
        raise _error(f"scheduler must be a name, an address or a distributed Client; got {scheduler!r}")
    s = (scheduler or "").strip()
    low = _ALIASES.get(s.lower(), s.lower())
    if low in ("", "auto") and profile and not _looks_like_file(profile):
        return "profile", get_profile(str(profile))
    if low in ("", "auto", "distributed"):
        c = active_client()
        if c is not None:
            return "client", c
        return ("localcluster", None) if low == "distributed" else ("local", "threads")
    if low in LOCAL_SCHEDULERS:
        return "local", low
    if low == "local":
        return "localcluster", None
    if _ADDRESS.search(s):
        return "address", s
    if s.lower().endswith(".json"):
        return "file", s
    name = s[len("profile:"):] if low.startswith("profile:") else s
    return "profile", get_profile(name, profile)


def new_cluster(p: Profile):
    """The profile's cluster, not yet scaled: its class called with its options.

    A dask-jobqueue class reads the rest of its settings from dask's configuration, with
    dazzle's defaults under it (:func:`register_jobqueue_defaults`).

    Parameters
    ----------
    p : Profile
        The profile.

    Returns
    -------
    distributed.deploy.Cluster

    Raises
    ------
    SchedulerError
        If the class may not be used, cannot be imported or refuses its settings.
    """
    cls = _import(p.cls)
    if p.cls.startswith("dask_jobqueue."):
        register_jobqueue_defaults()
    log.info("dazzle: starting %s (profile %s from %s)", p.cls, p.name, p.source)
    try:
        return cls(**p.options)
    except (TypeError, ValueError) as exc:   # jobqueue: ValueError for missing cores/memory
        raise _error(f"profile {p.name}: {p.cls} refused its settings ({_one_line(exc)}); set them in "
                     "the profile's options or in dask's configuration (~/.config/dask/jobqueue.yaml)") from exc


def _one_line(exc) -> str:
    return " ".join(str(exc).split())


def _start_profile(p: Profile, workers=None):
    cluster = new_cluster(p)
    try:
        if workers:
            cluster.scale(n=int(workers))
        elif p.adaptive:
            cluster.adapt(**p.adaptive)
        elif p.jobs:
            try:
                cluster.scale(jobs=int(p.jobs))
            except TypeError:   # not a dask-jobqueue cluster: jobs = workers
                cluster.scale(int(p.jobs))
        elif p.workers:
            cluster.scale(int(p.workers))
    except Exception:
        cluster.close()
        raise
    return cluster


@contextlib.contextmanager
def _quiet_distributed():
    """The in-process scheduler and nannies of a cluster dazzle starts log every connection at
    INFO; keep them at WARNING unless the ``dazzle`` logger is at DEBUG."""
    lg = logging.getLogger("distributed")
    old = lg.level
    if not log.isEnabledFor(logging.DEBUG):
        lg.setLevel(max(logging.WARNING, old))
    try:
        yield
    finally:
        lg.setLevel(old)


@contextlib.contextmanager
def connect(scheduler=None, *, workers=None, profile=None):
    """A context giving the ``distributed`` Client the run uses (None for local schedulers).

    Clusters it starts (``local``, profiles) are closed on exit, and clients it opens are
    closed; the caller's own client is left as it was.  Inside the context the client is the
    current one (``distributed.default_client()``).

    Parameters
    ----------
    scheduler : str, distributed.Client or None, optional
        As in :func:`normalize`.
    workers : int, optional
        Worker processes of ``local``, or the scaling of a profile (workers, not jobs).
    profile : str or os.PathLike, optional
        As in :func:`normalize`.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    SchedulerError
        A missing scheduler file, an unusable profile, or workers that did not connect within
        the profile's ``wait_timeout``.
    """
    kind, value = normalize(scheduler, profile)
    if kind == "local":
        yield None
        return
    if kind == "client":
        with value.as_current():
            yield value
        return
    from distributed import Client

    cluster = None
    quiet = contextlib.ExitStack()
    if kind in ("localcluster", "profile"):
        quiet.enter_context(_quiet_distributed())
    try:
        if kind == "address":
            client = Client(value, set_as_default=False)
        elif kind == "file":
            if not os.path.exists(value):
                raise _error(f"scheduler file {value} does not exist (start the scheduler with "
                             "--scheduler-file first)")
            client = Client(scheduler_file=value, set_as_default=False)
        elif kind == "localcluster":
            from distributed import LocalCluster

            n = int(workers) if workers else (os.cpu_count() or 1)
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster, set_as_default=False)
            log.info("dazzle: LocalCluster with %d worker process(es) of 1 thread", n)
        else:
            cluster = _start_profile(value, workers)
            client = Client(cluster, set_as_default=False)
        try:
            want = int(workers) if (kind == "profile" and workers) else (
                value.expected_workers(processes_per_job(cluster, value)) if kind == "profile" else 0)
            if want:
                t0 = time.perf_counter()
                timeout = value.wait_timeout
                log.info("dazzle: waiting for %d worker(s) (timeout %.0f s)", want, timeout)
                try:
                    client.wait_for_workers(want, timeout=timeout)
                except (TimeoutError, OSError) as exc:
                    raise _error(f"profile {value.name}: {want} worker(s) did not connect within "
                                 f"{timeout:.0f} s ({exc}); check the batch system's queue and the job "
                                 "logs (log_directory)") from exc
                log.info("dazzle: %d worker(s) up after %.1f s", want, time.perf_counter() - t0)
            with client.as_current():
                yield client
        finally:
            client.close()
    finally:
        try:
            if cluster is not None:
                cluster.close()
        finally:
            quiet.close()


# ---------------------------------------------------------------------------------------------
# per-step timing
# ---------------------------------------------------------------------------------------------

def task_prefix(key) -> str:
    """A task key's layer prefix (:func:`dazzle.facts.prefix_of`), else dask's ``key_split``."""
    p = facts.prefix_of(key)
    return p if p is not None else key_split(key)


class StepTimes:
    """Per key prefix: task count, first start, last stop, summed task time; rolled up per graph
    layer (:data:`dazzle.facts.LAYERS`) by :meth:`steps`."""

    def __init__(self):
        self.rows = {}   # prefix -> [n, first_start, last_stop, busy]
        self.t0 = time.time()

    def add(self, key, start, stop):
        p = task_prefix(key)
        r = self.rows.get(p)
        if r is None:
            self.rows[p] = [1, start, stop, stop - start]
        else:
            r[0] += 1
            r[1] = min(r[1], start)
            r[2] = max(r[2], stop)
            r[3] += stop - start

    def steps(self):
        """[(step, n, first_start, last_stop, busy, {prefix: n})] in the pipeline's order (dask's
        glue last)."""
        by = {}
        for p, (n, a, b, busy) in self.rows.items():
            s = facts.step_of(p)
            e = by.setdefault(s, [0, a, b, 0.0, {}])
            e[0] += n
            e[1] = min(e[1], a)
            e[2] = max(e[2], b)
            e[3] += busy
            e[4][p] = n
        order = [layer.name for layer in facts.LAYERS] + [GLUE]
        return [(s, *by[s]) for s in order if s in by]

    def line(self, step, n, a, b, busy, parts):
        detail = ", ".join(f"{p} {k}" for p, k in parts.items())
        return (f"dazzle: step {step}: {n} task(s) ({detail}), {b - a:.2f} s wall "
                f"(+{a - self.t0:.2f} .. +{b - self.t0:.2f} s), {busy:.2f} s task time")

    def as_dict(self) -> dict:
        """``{step: {"tasks", "seconds" (summed task time), "start", "end" (s from the start),
        "prefixes": {prefix: tasks}}}`` in the pipeline's order (dask glue left out)."""
        return {s: {"tasks": n, "seconds": busy, "start": a - self.t0, "end": b - self.t0,
                    "prefixes": parts}
                for s, n, a, b, busy, parts in self.steps() if s != GLUE}

    def log_all(self):
        for row in self.steps():
            if row[0] != GLUE:
                log.info(self.line(*row))


class StepTimer(dask.callbacks.Callback):
    """The step timer of the local (threads / processes / synchronous) schedulers: a Dask
    callback that times every task into a :class:`StepTimes` and logs each step when its last
    task is done.  (On a distributed cluster the scheduler's task stream is used instead.)"""

    def __init__(self, times: StepTimes | None = None):
        super().__init__()
        self.times = StepTimes() if times is None else times
        self.started = {}
        self.left = {}
        self.lock = threading.Lock()

    def _start(self, dsk):
        counts = {}
        for k in dsk:
            s = facts.step_of(k)
            counts[s] = counts.get(s, 0) + 1
        self.left = counts

    def _pretask(self, key, dsk, state):
        self.started[key] = time.time()

    def _posttask(self, key, result, dsk, state, worker_id):
        stop = time.time()
        with self.lock:
            self.times.add(key, self.started.pop(key, stop), stop)
            s = facts.step_of(key)
            self.left[s] = self.left.get(s, 1) - 1
            if self.left[s] == 0 and s != GLUE:
                for row in self.times.steps():
                    if row[0] == s:
                        log.info(self.times.line(*row))


def _stream_times(records, t0) -> StepTimes:
    times = StepTimes()
    times.t0 = t0
    for r in records:
        for ss in r.get("startstops", ()):
            if ss.get("action") == "compute":
                times.add(r["key"], ss["start"], ss["stop"])
    return times


# ---------------------------------------------------------------------------------------------
# compute
# ---------------------------------------------------------------------------------------------

class TaskProgress(dask.callbacks.Callback):
    """Progress of a local run on ``out`` (default stderr), drawn from dask's task callbacks:
    no thread of its own, so nothing to wait for when the run ends (dask's ``ProgressBar``
    joins a thread that sleeps ``dt`` between redraws: up to ``dt`` seconds added to a run).

    On a terminal, a bar redrawn in place at most every 0.1 s; otherwise (a log file, a batch
    job) a line at most every ``every`` seconds; nothing during the first ``minimum`` seconds.
    A finished run ends with a ``100% Completed`` line.
    """

    def __init__(self, out=None, *, tty=None, every=10.0, minimum=0.5, width=40):
        super().__init__()
        self.out = out if out is not None else sys.stderr
        if tty is None:
            tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.tty = bool(tty)
        self.every = 0.1 if self.tty else float(every)
        self.minimum = float(minimum)
        self.width = int(width)
        self.t0 = self.last = time.perf_counter()
        self.drawn = False

    def _start(self, dsk):
        self.t0 = self.last = time.perf_counter()
        self.drawn = False

    def _posttask(self, key, result, dsk, state, worker_id):
        now = time.perf_counter()
        if now - self.t0 < self.minimum or now - self.last < self.every:
            return
        self.last = now
        done = len(state["finished"])
        total = done + sum(len(state[k]) for k in ("ready", "waiting", "running"))
        self._draw(done / total if total else 0.0, now - self.t0)

    def _finish(self, dsk, state, errored):
        if not errored:
            self._draw(1.0, time.perf_counter() - self.t0)
        if self.drawn and self.tty:
            self._write("\n")

    def _draw(self, frac, elapsed):
        from dask.utils import format_time

        bar = "#" * int(self.width * frac)
        line = f"[{bar:<{self.width}}] | {int(100 * frac)}% Completed | {format_time(elapsed)}"
        self._write("\r" + line if self.tty else line + "\n")
        self.drawn = True

    def _write(self, text):
        with contextlib.suppress(ValueError, OSError):   # a closed stream ends the display only
            self.out.write(text)
            self.out.flush()


def _local_get(scheduler):
    """dask's get function of a local scheduler.  Handing dask.compute the function, not its
    name, keeps dask from importing ``distributed`` (about 1 s) to look for a Client."""
    if scheduler == "synchronous":
        from dask.local import get_sync

        return get_sync
    if scheduler == "processes":
        from dask.multiprocessing import get

        return get
    from dask.threaded import get

    return get


#: Blocks of at least this many bytes get their own memory mapping from glibc's malloc, given
#: back to the system as soon as they are freed (see :func:`tune_malloc`).
MMAP_THRESHOLD = 64 << 20

#: glibc's ``M_TRIM_THRESHOLD`` while a local run computes (see :func:`tuned_malloc`), and its
#: default, restored afterwards
RUN_TRIM_THRESHOLD = (1 << 31) - 1   # mallopt takes a C int
DEFAULT_TRIM_THRESHOLD = 128 << 10

# mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def _glibc():
    """glibc through ctypes, or None (not Linux, not glibc, or ``MALLOC_MMAP_THRESHOLD_`` /
    a ``glibc.malloc`` tunable in the environment: the user's settings win)."""
    if (os.environ.get("MALLOC_MMAP_THRESHOLD_") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
            or not sys.platform.startswith("linux")):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim   # noqa: B018 -- both needed: glibc's
    except (OSError, AttributeError):   # not glibc
        return None
    return libc


def tune_malloc(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's ``M_MMAP_THRESHOLD`` for this process (Linux with glibc; else nothing).

    glibc raises its threshold after every large block freed, up to 32 MiB; a fixed one (set
    once, by any local run; ``MALLOC_MMAP_THRESHOLD_`` or a ``glibc.malloc`` tunable in the
    environment wins) also fixes its trim threshold, which :func:`tuned_malloc` sets for the
    run.  At 64 MiB every array of a section's work (pixel map, sums, weights: 4-17 MB) comes
    from the heap, and only frame-size arrays get mappings of their own.

    Parameters
    ----------
    threshold : int
        Bytes.

    Returns
    -------
    bool
        Whether the threshold was set.
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


@contextlib.contextmanager
def tuned_malloc():
    """glibc's malloc set for a local run while the block runs (Linux with glibc; else nothing).

    The drizzle makes and drops its sections' arrays (4-17 MB) by the thousand.  glibc by
    default gives freed memory at the top of its heap back to the system at once (trim
    threshold 128 KiB once the mmap threshold is fixed), and its next block of that size
    comes back as fresh pages that the kernel has to fault in and zero -- in a VM a third of
    the run's CPU was system time.  For the run: the mmap threshold at 64 MiB
    (:func:`tune_malloc`), no trimming, and one malloc arena (freed memory is reused by
    every thread, so keeping it does not raise the peak; a thread that glibc hands an arena
    made before the run -- an exited thread's, in a long-lived process -- grows that heap
    once, then reuses it too).  On leaving, the trim threshold
    goes back to glibc's default and ``malloc_trim(0)`` returns what is free.

    Measured on the WFC set (``benchmarks/bench_pipeline.py``, 2 threads, three runs each):
    minor page faults 366-451 k -> 116-161 k, system time 6.9-8.4 s -> 5.0-6.4 s, peak RSS
    1218-1332 MiB -> 1304-1334 MiB (AstroDrizzle's: 1371 MiB).

    Yields
    ------
    bool
        Whether malloc was tuned.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    tune_malloc()
    libc.mallopt(_M_ARENA_MAX, 1)
    libc.mallopt(_M_TRIM_THRESHOLD, RUN_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def _compute_local(objs, scheduler, progress, workers, times):
    ctx = contextlib.ExitStack()
    ctx.enter_context(tuned_malloc())
    ctx.enter_context(StepTimer(times))
    if progress:
        ctx.enter_context(TaskProgress(sys.stderr))
    kw = {"num_workers": int(workers)} if workers and scheduler != "synchronous" else {}
    with ctx:
        return list(dask.compute(*objs, scheduler=_local_get(scheduler), **kw))


def _compute_client(client, objs, progress, report, times):
    from distributed import get_task_stream, performance_report, progress as dprogress

    t0 = time.time()
    log.info("dazzle: running on %s (%d worker(s)); dashboard %s", client.scheduler.address,
             len(client.nthreads()), client.dashboard_link)
    stack = contextlib.ExitStack()
    stream = None
    with stack:
        try:   # the scheduler's record of every task run inside this block (diagnostics only)
            stream = stack.enter_context(get_task_stream(client=client))
        except Exception as exc:  # noqa: BLE001
            log.debug("dazzle: no task stream (%s)", exc)
        if report:
            stack.enter_context(performance_report(filename=str(report)))
        future = client.compute(dask.delayed(list(objs), traverse=True))
        try:
            if progress:
                print(f"dazzle: dashboard at {client.dashboard_link}", file=sys.stderr)
                dprogress(future)
            result = future.result()
        finally:
            future.release()
    if report:
        log.info("dazzle: performance report written to %s", report)
    if stream is not None:
        got = _stream_times(stream.data, t0)
        times.rows, times.t0 = got.rows, got.t0
        times.log_all()
    return list(result)


def compute(objs, scheduler=None, *, progress=False, workers=None, profile=None, report=None,
            steps=None):
    """Compute delayed objects on a scheduler and return their values.

    Parameters
    ----------
    objs : iterable
        The delayed objects (items may be nested lists or None).
    scheduler : str, distributed.Client or None, optional
        Where to run (see the module's doc for the choices).
    progress : bool, optional
        Show progress (local: :class:`TaskProgress` on stderr; distributed: the dashboard link
        and ``distributed.progress``).
    workers : int, optional
        Worker processes of ``local``, threads of ``threads``, processes of ``processes``, or
        the scaling of a profile.
    profile : str or os.PathLike, optional
        The profiles file (or, when ``scheduler`` is left at its default, a profile name).
    report : str, optional
        An HTML file for Dask's performance report (needs bokeh; a local scheduler is replaced
        by a temporary in-process ``LocalCluster``).
    steps : dict, optional
        Filled with the per-step timing (:meth:`StepTimes.as_dict`).

    Returns
    -------
    list
        The values, in the order of ``objs``.

    Raises
    ------
    SchedulerError
        A scheduler that cannot be used, or ``report`` without bokeh.
    """
    objs = list(objs)
    kind, value = normalize(scheduler, profile)
    if report and importlib.util.find_spec("bokeh") is None:
        raise _error("report= (--report) needs bokeh for Dask's performance report: "
                     "pip install 'dazzle[cluster]' or pip install bokeh")
    t0 = time.perf_counter()
    times = StepTimes()
    if kind == "local" and report:
        from distributed import Client, LocalCluster

        n = int(workers) if workers else (os.cpu_count() or 1)
        opts = {"threads": dict(processes=False, n_workers=1, threads_per_worker=n),
                "processes": dict(processes=True, n_workers=n, threads_per_worker=1),
                "synchronous": dict(processes=False, n_workers=1, threads_per_worker=1)}[value]
        log.info("dazzle: --report needs a distributed scheduler: running this %s run on a "
                 "temporary LocalCluster(%s)", value, ", ".join(f"{k}={v}" for k, v in opts.items()))
        with _quiet_distributed(), LocalCluster(dashboard_address=":0", **opts) as cluster, \
                Client(cluster, set_as_default=False) as client:
            with client.as_current():
                out = _compute_client(client, objs, progress, report, times)
    elif kind == "local":
        log.info("dazzle: running on the %s scheduler", value)
        out = _compute_local(objs, value, progress, workers, times)
    else:
        with connect(scheduler, workers=workers, profile=profile) as client:
            out = _compute_client(client, objs, progress, report, times)
    log.info("dazzle: graph computed in %.2f s", time.perf_counter() - t0)
    if steps is not None:
        steps.update(times.as_dict())
    return out
