"""Run summaries and the HTML report of a run (``dazzle report RUN_DIR``).

What a report shows, and where it comes from:

* ``<output>_run.json`` (written by :func:`save_run_summary` from a ``RunResult``, beside the
  products): inputs, chips, sky per chip, cosmic-ray pixels per chip, time per step, every
  parameter.  ``dazzle demo`` writes it.
* Without that file the run is rebuilt from its products (:func:`collect_run`): the
  parameters from the ``HISTORY`` cards (``dazzle name = value``) of ``_drz``/``_med``/
  ``_single_sci`` headers, sky values from ``MDRIZSKY`` in the ``_blt.fits`` (or
  ``MDRIZSKn`` in ``_single_sci.fits``), cosmic-ray counts from the ``_crmask.fits`` files, the
  input of each chip from their ``DZ_INPUT``/``DZ_EXTV`` cards.  Timings are then unknown.

:func:`render_report` writes one self-contained HTML file: the final mosaic and every chip with
its CR mask as inline (base64) PNG images (:mod:`dazzle.preview`), and tables of the time per
step, sky and cosmic rays per chip, and the parameters (changed ones marked).

Time per step comes from the run itself (``RunResult.steps``, timed by
:class:`dazzle.cluster.StepTimer` or the cluster's task stream, named by
:data:`dazzle.facts.LAYERS`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import glob
import html
import json
import os
import re
import string
from dataclasses import dataclass, field

import numpy as np

from dazzle import preview
from dazzle.atomic import write_bytes_atomic
from dazzle.errors import InputError

__all__ = [
    "ReportError",
    "normalize_steps",
    "save_run_summary",
    "find_run",
    "collect_run",
    "RunInfo",
    "write_previews",
    "render_report",
    "report_data",
    "render_html",
    "text_summary",
]

RUN_SUMMARY_SUFFIX = "_run.json"
REPORT_NAME = "report.html"
SCHEMA = "dazzle-run/1"

class ReportError(InputError):
    """Nothing to report on in the run folder, or a run summary that cannot be read."""


# ---------------------------------------------------------------------------------------------
# the run summary (JSON)
# ---------------------------------------------------------------------------------------------

def _ext_json(ext):
    if isinstance(ext, (tuple, list)):
        return [ext[0], int(ext[1])]
    return ext


def _ext_fits(ext):
    if isinstance(ext, list):
        return (str(ext[0]), int(ext[1]))
    return ext


def _rel(path, base):
    if path is None:
        return None
    return os.path.relpath(os.path.abspath(os.fspath(path)), base)


def _product_root(path: str) -> str:
    base = os.path.basename(path)
    for suffix in ("_drz.fits", "_drc.fits", "_drw.fits", "_drz_sci.fits", "_drc_sci.fits", "_drw_sci.fits",
                   "_med.fits"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0]


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def normalize_steps(steps) -> dict:
    """Time per step as ``{step: {"tasks", "seconds", "start", "end"}}`` from such a dict (e.g.
    ``RunResult.steps``), from a :class:`dazzle.cluster.StepTimes` (or its ``steps()`` rows
    ``(step, n, first_start, last_stop, busy, parts)``), or None."""
    if not steps:
        return {}
    t0 = None
    if hasattr(steps, "steps") and callable(steps.steps):
        t0 = getattr(steps, "t0", None)
        steps = steps.steps()
    if isinstance(steps, dict):
        return {str(k): {"tasks": int(v.get("tasks", 0)), "seconds": float(v.get("seconds", 0.0)),
                         "start": float(v.get("start", 0.0)), "end": float(v.get("end", 0.0))}
                for k, v in steps.items()}
    rows = list(steps)
    if not rows:
        return {}
    if t0 is None:
        t0 = min(float(r[2]) for r in rows)
    return {str(r[0]): {"tasks": int(r[1]), "seconds": float(r[4]), "start": float(r[2]) - t0,
                        "end": float(r[3]) - t0} for r in rows}


def save_run_summary(result, path=None, *, steps: dict | None = None, wall_time: float | None = None,
                     extra: dict | None = None, chip_columns: list | None = None,
                     chip_extra: list | None = None, command: str | None = None) -> str:
    """Write what ``dazzle report`` needs of a ``RunResult`` as ``<output>_run.json``.

    ``path`` defaults to ``<output root>_run.json`` beside the final product (or the median,
    or the first single image).  ``steps`` is anything :func:`normalize_steps` takes (default: the result's ``steps`` attribute if it has one);
    ``wall_time`` the whole command's seconds.
    ``chip_columns`` (``[[key, title], ...]``) with ``chip_extra`` (one dict per chip) add
    columns to the report's chip table (the demo adds the cosmic-ray truth).  Paths are stored
    relative to the JSON's folder.  Returns the path written.
    """
    from dazzle import __version__
    from dazzle.params import format_value

    anchor = result.output or result.median or (result.single[0][0] if result.single else None)
    if path is None:
        if anchor is None:
            raise ReportError("save_run_summary: the run made no products; pass path=")
        root = _product_root(anchor) if (result.output or result.median) else "dazzle"
        path = os.path.join(os.path.dirname(os.path.abspath(anchor)), root + RUN_SUMMARY_SUFFIX)
    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    out_dir = os.path.dirname(os.path.abspath(anchor)) if anchor else base
    crmasks = result.crmasks
    chips = []
    for k, c in enumerate(result.chips):
        cr_name = f"{c.root}_sci{c.extver}_crmask.fits"
        blt_name = f"{c.root}_sci{c.extver}_blt.fits"
        entry = {
            "label": os.path.basename(c.path) + (f"[{c.sci_ext[0]},{c.sci_ext[1]}]"
                                                 if isinstance(c.sci_ext, tuple) else f"[{c.sci_ext}]"),
            "path": _rel(c.path, base), "root": c.root, "extver": int(c.extver),
            "sci_ext": _ext_json(c.sci_ext), "dq_ext": _ext_json(c.dq_ext),
            "shape": [int(n) for n in c.shape], "exptime": float(c.exptime), "bunit": c.bunit or "",
            "sky": float(result.skies[k]) if k < len(result.skies) else None,
            "cr_pixels": (int((~np.asarray(crmasks[k], dtype=bool)).sum())
                          if crmasks is not None and crmasks[k] is not None else None),
            "crmask": _rel(os.path.join(out_dir, cr_name), base)
                      if os.path.exists(os.path.join(out_dir, cr_name)) else None,
            "blot": _rel(os.path.join(out_dir, blt_name), base)
                    if os.path.exists(os.path.join(out_dir, blt_name)) else None,
        }
        if chip_extra and k < len(chip_extra) and chip_extra[k]:
            entry.update(_jsonable(chip_extra[k]))
        chips.append(entry)
    if steps is None:
        steps = getattr(result, "steps", None)
    doc = {
        "schema": SCHEMA,
        "dazzle_version": __version__,
        "written": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "output": _rel(result.output, base),
        "median": _rel(result.median, base),
        "single": [[_rel(s, base), _rel(w, base)] for s, w in result.single],
        "frame_shape": list(result.frame_shape) if result.frame_shape else None,
        "nchips": int(result.nchips),
        "inputs": list(dict.fromkeys(_rel(c.path, base) for c in result.chips)),
        "chips": chips,
        "timings": {k: float(v) for k, v in (result.timings or {}).items()
                    if isinstance(v, (int, float))},
        "steps": normalize_steps(steps),
        "wall_time": None if wall_time is None else float(wall_time),
        "params": {k: format_value(v) for k, v in (result.params or {}).items()},
        "chip_columns": [list(c) for c in (chip_columns or [])],
        "extra": _jsonable(extra or {}),
    }
    write_bytes_atomic(path, json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# finding and collecting a run
# ---------------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """A run as the report sees it (all paths absolute; missing things None/empty)."""

    source: str                         # the _run.json, or the final product it was rebuilt from
    from_summary: bool
    output: str | None
    median: str | None = None
    single: list = field(default_factory=list)
    frame_shape: tuple | None = None
    inputs: list = field(default_factory=list)
    chips: list = field(default_factory=list)        # dicts, see save_run_summary
    timings: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    wall_time: float | None = None
    params: dict = field(default_factory=dict)       # name -> value as text
    chip_columns: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    command: str | None = None
    dazzle_version: str | None = None
    written: str | None = None
    notes: list = field(default_factory=list)

    @property
    def root(self) -> str:
        anchor = self.output or self.median or self.source
        return _product_root(anchor)

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.source))


def _candidates(run_dir, patterns, depth=2):
    found = []
    for d in range(depth + 1):
        for pat in patterns:
            found += glob.glob(os.path.join(glob.escape(run_dir), *(["*"] * d), pat))
    return sorted(set(found), key=lambda p: (os.path.getmtime(p), p))


def find_run(run_dir) -> tuple[str, bool]:
    """The run to report on in ``run_dir`` (up to two folders down): its newest
    ``*_run.json``, else its newest ``*_drz.fits``/``*_drc.fits``.  ``run_dir`` may also name
    one of those files.  Returns ``(path, is_summary)``."""
    run_dir = os.fspath(run_dir)
    if os.path.isfile(run_dir):
        return run_dir, run_dir.endswith(".json")
    if not os.path.isdir(run_dir):
        raise ReportError(f"{run_dir}: no such folder")
    sums = _candidates(run_dir, ["*" + RUN_SUMMARY_SUFFIX])
    if sums:
        return sums[-1], True
    prods = _candidates(run_dir, ["*_drz.fits", "*_drc.fits"])
    if prods:
        return prods[-1], False
    raise ReportError(f"{run_dir}: no dazzle run found (no *{RUN_SUMMARY_SUFFIX}, *_drz.fits or "
                      f"*_drc.fits here or up to two folders down)")


def _abs(p, base):
    if p is None:
        return None
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))


def _from_summary(path) -> RunInfo:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read the run summary: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("dazzle-run/"):
        raise ReportError(f"{path}: not a dazzle run summary (no 'schema': '{SCHEMA}')")
    base = os.path.dirname(os.path.abspath(path))
    chips = []
    for c in doc.get("chips", []):
        c = dict(c)
        for key in ("path", "crmask", "blot"):
            c[key] = _abs(c.get(key), base)
        c["sci_ext"] = _ext_fits(c.get("sci_ext"))
        c["dq_ext"] = _ext_fits(c.get("dq_ext"))
        chips.append(c)
    return RunInfo(
        source=os.path.abspath(path), from_summary=True, output=_abs(doc.get("output"), base),
        median=_abs(doc.get("median"), base),
        single=[[_abs(s, base), _abs(w, base)] for s, w in doc.get("single", [])],
        frame_shape=tuple(doc["frame_shape"]) if doc.get("frame_shape") else None,
        inputs=[_abs(p, base) for p in doc.get("inputs", [])], chips=chips,
        timings=doc.get("timings") or {}, steps=doc.get("steps") or {}, wall_time=doc.get("wall_time"),
        params=doc.get("params") or {}, chip_columns=doc.get("chip_columns") or [],
        extra=doc.get("extra") or {}, command=doc.get("command"),
        dazzle_version=doc.get("dazzle_version"), written=doc.get("written"))


_HISTORY = re.compile(r"^dazzle (\w+) = (.*)$")


def _history_params(path) -> dict:
    from astropy.io import fits

    out = {}
    try:
        with fits.open(path) as h:
            for hdu in h:
                for line in hdu.header.get("HISTORY", []):
                    m = _HISTORY.match(str(line).strip())
                    if m:
                        out.setdefault(m.group(1), m.group(2).strip())
    except OSError:
        pass
    return out


def _from_products(product) -> RunInfo:
    from astropy.io import fits

    product = os.path.abspath(product)
    out_dir = os.path.dirname(product)
    root = _product_root(product)
    info = RunInfo(source=product, from_summary=False, output=product)
    info.notes.append(f"rebuilt from the products' headers (no {root}{RUN_SUMMARY_SUFFIX}): "
                      "timings were not recorded and only the parameters written into the "
                      "headers are shown")
    with fits.open(product) as h:
        info.frame_shape = tuple(h["SCI"].data.shape) if "SCI" in h else None
        info.written = h[0].header.get("DATE")
        info.dazzle_version = h[0].header.get("DAZZLEV")
    med = os.path.join(out_dir, root + "_med.fits")
    info.median = med if os.path.exists(med) else None
    singles = sorted(glob.glob(os.path.join(glob.escape(out_dir), "*_single_sci.fits")))
    info.single = [[s, s.replace("_single_sci.fits", "_single_wht.fits")] for s in singles]
    params = {}
    for p in [product] + ([med] if info.median else []) + singles[:1]:
        for k, v in _history_params(p).items():
            params.setdefault(k, v)
    info.params = params
    # chips: from the blot / CR mask products, else from the single images' sky cards
    chips: dict = {}
    for pattern, key in (("*_sci*_crmask.fits", "crmask"), ("*_sci*_blt.fits", "blot")):
        for f in sorted(glob.glob(os.path.join(glob.escape(out_dir), pattern))):
            m = re.match(r"(.+)_sci(\d+)_(crmask|blt)\.fits$", os.path.basename(f))
            if not m:
                continue
            hdr = fits.getheader(f)
            name = hdr.get("DZ_INPUT") or m.group(1) + "_flt.fits"
            extver = int(hdr.get("DZ_EXTV", m.group(2)))
            c = chips.setdefault((name, extver), {
                "label": f"{name}[SCI,{extver}]", "path": name, "root": m.group(1), "extver": extver,
                "sci_ext": ("SCI", extver), "dq_ext": ("DQ", extver), "exptime": hdr.get("EXPTIME"),
                "sky": None, "cr_pixels": None, "crmask": None, "blot": None, "bunit": ""})
            c[key] = f
            if key == "blot" and "MDRIZSKY" in hdr:
                c["sky"] = float(hdr["MDRIZSKY"])
            if key == "crmask":
                data = fits.getdata(f)
                c["cr_pixels"] = int((data == 0).sum())
                c["shape"] = list(data.shape)
    if not chips:
        for s in singles:
            hdr = fits.getheader(s)
            r = os.path.basename(s)[: -len("_single_sci.fits")]
            n = 1
            while f"MDRIZSK{n}" in hdr:
                chips[(r + "_flt.fits", n)] = {
                    "label": f"{r}_flt.fits[SCI,{n}]", "path": r + "_flt.fits", "root": r, "extver": n,
                    "sci_ext": ("SCI", n), "dq_ext": ("DQ", n), "exptime": hdr.get("EXPTIME"),
                    "sky": float(hdr[f"MDRIZSK{n}"]), "cr_pixels": None, "crmask": None, "blot": None,
                    "bunit": ""}
                n += 1
    info.chips = [chips[k] for k in sorted(chips)]
    info.inputs = list(dict.fromkeys(c["path"] for c in info.chips))
    if not info.chips:
        info.notes.append("the products do not name their input chips (no _blt, _crmask or _single "
                          "images beside them): no per-chip table")
    return info


def collect_run(run_dir) -> RunInfo:
    """The run in ``run_dir`` (see :func:`find_run`), from its ``_run.json`` or its products."""
    path, is_summary = find_run(run_dir)
    info = _from_summary(path) if is_summary else _from_products(path)
    search = [info.folder, os.path.dirname(info.folder), os.path.join(os.path.dirname(info.folder), "inputs"),
              os.path.join(info.folder, "inputs"), os.fspath(run_dir) if os.path.isdir(run_dir) else info.folder,
              os.getcwd()]
    for c in info.chips:
        p = c.get("path")
        if p and os.path.isfile(p):
            continue
        name = os.path.basename(p or "")
        hit = next((os.path.join(d, name) for d in search if name and os.path.isfile(os.path.join(d, name))), None)
        c["path"] = hit
        if hit is None:
            info.notes.append(f"input {name or '?'} not found: its chip is shown from the blotted median")
    if info.output and not os.path.isfile(info.output):
        info.notes.append(f"final product {info.output} is missing")
    return info


# ---------------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------------

def _wcs(header, hdul=None):
    """The celestial WCS of an image header (with the lookup-table distortions ``hdul`` holds),
    or None."""
    from astropy.wcs import WCS

    try:
        w = WCS(header, hdul)
    except Exception:  # noqa: BLE001 -- a picture without RA/Dec axes is still a picture
        return None
    return w if w.has_celestial else None


def _read_final(path, max_side):
    """The final SCI (NaN where WHT <= 0) block-averaged to fit ``max_side``, the factor, the
    full shape, the WCS and BUNIT.  Read in strips from a memory map, so a mosaic of any size
    needs little memory."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as h:
        sci = h["SCI"].data
        wht = h["WHT"].data if "WHT" in h else None
        f = preview._factor(sci.shape, max_side)
        step = f * max(1, 1024 // f)
        strips = []
        for y0 in range(0, sci.shape[0], step):
            s = np.asarray(sci[y0:y0 + step], dtype=np.float64)
            if wht is not None:
                s = np.where(np.asarray(wht[y0:y0 + step]) > 0, s, np.nan)
            strips.append(preview.downsample(s, f))
        hdr = h["SCI"].header
        return np.vstack(strips), f, sci.shape, _wcs(hdr), hdr.get("BUNIT")


def _read_chip(c):
    """(sci, good-or-None, crmask-or-None, what, wcs-or-None, bunit) for a chip dict."""
    from astropy.io import fits

    crmask = None
    if c.get("crmask") and os.path.isfile(c["crmask"]):
        crmask = fits.getdata(c["crmask"]).astype(bool)
    if c.get("path") and os.path.isfile(c["path"]):
        with fits.open(c["path"]) as h:
            ext = c.get("sci_ext") or 0
            ext = ext if (not isinstance(ext, tuple) or ext in h) else 0
            sci = np.asarray(h[ext].data, dtype=np.float32)
            good = None
            dq_ext = c.get("dq_ext")
            if isinstance(dq_ext, tuple) and dq_ext in h:
                good = np.asarray(h[dq_ext].data) == 0
            return sci, good, crmask, "input chip", _wcs(h[ext].header, h), h[ext].header.get("BUNIT")
    if c.get("blot") and os.path.isfile(c["blot"]):
        with fits.open(c["blot"]) as h:
            return (np.asarray(h[0].data, dtype=np.float32), None, crmask, "blotted median (input not found)",
                    _wcs(h[0].header), h[0].header.get("BUNIT"))
    return None, None, crmask, "not found", None, None


def final_png(info: RunInfo, *, max_side=preview.MAX_SIDE) -> bytes | None:
    """The picture of the final mosaic (:func:`dazzle.preview.preview_png_bytes`), or None."""
    if not info.output or not os.path.isfile(info.output):
        return None
    image, f, shape, wcs, bunit = _read_final(info.output, max_side)
    return preview.preview_png_bytes(image, wcs=wcs, max_side=None, binned=f, full_shape=shape, bunit=bunit,
                                     title=f"{os.path.basename(info.output)} SCI")


def chip_png(c: dict, *, max_side=preview.MAX_SIDE) -> tuple[bytes | None, str]:
    """The picture of a chip with its CR mask (:func:`dazzle.preview.chip_crmask_png_bytes`) and
    what it shows, or ``(None, why not)``."""
    sci, good, crmask, what, wcs, bunit = _read_chip(c)
    if sci is None:
        return None, what
    if crmask is None or crmask.shape != sci.shape:
        crmask = np.ones(sci.shape, dtype=bool)
        what += ", no CR mask"
    return preview.chip_crmask_png_bytes(sci, crmask, good=good, wcs=wcs, max_side=max_side, bunit=bunit,
                                         title=c.get("label")), what


def write_previews(info: RunInfo, folder, *, chip: int = 0, max_side=preview.MAX_SIDE) -> dict:
    """Write ``preview_drz.png`` (the final mosaic) and ``preview_chip_crmask.png`` (chip
    ``chip`` with its CR mask) into ``folder``; returns ``{"drz": path, "chip": path}`` for
    those written."""
    out = {}
    b = final_png(info, max_side=max_side)
    if b is not None:
        out["drz"] = preview._write_atomic(os.path.join(folder, "preview_drz.png"), b)
    if info.chips and chip < len(info.chips):
        b, _ = chip_png(info.chips[chip], max_side=max_side)
        if b is not None:
            out["chip"] = preview._write_atomic(os.path.join(folder, "preview_chip_crmask.png"), b)
    return out


def _png_size(b: bytes) -> tuple[int, int]:
    import struct

    return struct.unpack(">II", b[16:24])


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1300px; padding: 0 1em; color: #1d232b; background: #fbfbfc; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em;
  border-bottom: 1px solid #d7dbe0; padding-bottom: 0.2em; }
.sub { color: #5b6570; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d7dbe0; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef1f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.changed td { background: #fff6d6; font-weight: 600; } tr.group th { background: #dde3ea; }
figure { display: inline-block; margin: 0.6em 1.2em 0.6em 0; vertical-align: top; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: pixelated;
  background: #222; border: 1px solid #9aa3ad; }
figcaption { font-size: 0.85em; color: #4a545e; max-width: 600px; margin-top: 0.3em; }
.note { background: #fff3cd; border: 1px solid #e6d38b; padding: 0.4em 0.7em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; border: 1px solid #555; }
code { background: #eef1f4; padding: 0 0.25em; border-radius: 3px; }
footer { margin-top: 2em; color: #7a848e; font-size: 0.85em; }
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _num(v, fmt="{:.2f}", cls="num"):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return f'<td class="{cls}" data-value="">&ndash;</td>'
    return f'<td class="{cls}" data-value="{_e(repr(v) if isinstance(v, float) else v)}">{_e(fmt.format(v))}</td>'


def _img(png: bytes, id_: str, alt: str) -> str:
    w, h = _png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<img id="{_e(id_)}" src="data:image/png;base64,{data}" width="{w}" height="{h}" '
            f'alt="{_e(alt)}">')


def _rel_display(p, base):
    if not p:
        return ""
    try:
        return os.path.relpath(p, base)
    except ValueError:
        return p


def _pixel_scale(path) -> float | None:
    try:
        from astropy.io import fits
        from astropy.wcs import WCS
        from astropy.wcs.utils import proj_plane_pixel_scales

        with fits.open(path) as h:
            w = WCS(h["SCI"].header)
        return float(np.mean(proj_plane_pixel_scales(w)) * 3600.0)
    except Exception:  # noqa: BLE001 -- a nicety only
        return None


def _param_rows(params: dict) -> list[str]:
    from dazzle.params import PARAMETERS, STEPS, SWITCHES, format_value

    rows = []
    seen = set()
    for step, title in STEPS.items():
        names = [n for n, p in PARAMETERS.items() if p.step == step and n in params]
        if not names:
            continue
        switch = SWITCHES.get(step)
        state = f" &mdash; {_e(switch)} = {_e(params[switch])}" if switch and switch in params else ""
        rows.append(f'<tr class="group"><th colspan="4">{_e(title)}{state}</th></tr>')
        for n in names:
            p = PARAMETERS[n]
            value, default = str(params[n]), format_value(p.default)
            changed = value != default
            rows.append(f'<tr class="{"changed" if changed else ""}" data-name="{_e(n)}">'
                        f'<td><code>{_e(n)}</code></td><td data-value="{_e(value)}">{_e(value)}</td>'
                        f'<td>{_e(default)}</td><td>{_e(p.help)}</td></tr>')
            seen.add(n)
    other = [n for n in params if n not in seen]
    if other:
        rows.append('<tr class="group"><th colspan="4">Other</th></tr>')
        rows += [f'<tr data-name="{_e(n)}"><td><code>{_e(n)}</code></td><td data-value="{_e(params[n])}">'
                 f'{_e(params[n])}</td><td></td><td></td></tr>' for n in other]
    return rows


_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>$css</style>
</head>
<body>
<h1>$title</h1>
$body
<footer>Written by dazzle report on $written; self-contained (images inline).</footer>
</body>
</html>
""")

_STEPS_NOTE = ("Task time adds up the step's tasks (they run in parallel, so it can exceed the elapsed time); "
               "from/to are the first start and last end after the graph started. A first run includes Numba "
               "compilation.")


def report_data(info: RunInfo, base, *, max_side: int = preview.MAX_SIDE, chip_max_side: int = 1024,
                max_chips: int = 16) -> dict:
    """What the report of ``info`` shows, as plain values (text, numbers, PNG bytes; no HTML):
    the summary rows, the mosaic, the time per step, the chips with their pictures and the
    parameters.  Paths are shown relative to ``base`` (the report's folder)."""
    rows = []
    if info.output:
        scale = _pixel_scale(info.output) if os.path.isfile(info.output) else None
        shape = f"{info.frame_shape[1]} x {info.frame_shape[0]} pixels" if info.frame_shape else ""
        rows.append(("final product", _rel_display(info.output, base)))
        rows.append(("output frame", shape + (f', {scale:.4f}"/pixel' if scale else "")))
    if info.median:
        rows.append(("median", _rel_display(info.median, base)))
    if info.single:
        rows.append(("single-drizzled", f"{len(info.single)} exposure(s), e.g. {_rel_display(info.single[0][0], base)}"))
    crm = [c.get("crmask") for c in info.chips if c.get("crmask")]
    if crm:
        rows.append(("CR masks", f"{len(crm)}, e.g. {_rel_display(crm[0], base)}"))
    rows.append(("inputs", ", ".join(os.path.basename(p or "?") for p in info.inputs[:6])
                 + (f" ... ({len(info.inputs)} in all)" if len(info.inputs) > 6 else "")))
    if info.command:
        rows.append(("command", info.command))
    if info.wall_time is not None:
        rows.append(("wall time", f"{info.wall_time:.1f} s"))
    rows.append(("run summary" if info.from_summary else "rebuilt from", _rel_display(info.source, base)))
    units = sorted({c.get("bunit") for c in info.chips if c.get("bunit")})
    shown = info.chips[:max_chips]
    return {"info": info, "title": f"dazzle report: {info.root}", "summary": rows,
            "figures": preview.choose_backend() == "matplotlib",
            "final_png": final_png(info, max_side=max_side), "steps": info.steps, "timings": info.timings,
            "wall_time": info.wall_time, "sky_unit": units[0].lower() if len(units) == 1 else None,
            "chip_pictures": [chip_png(c, max_side=chip_max_side) for c in shown],
            "more_chips": len(info.chips) - len(shown), "max_chips": max_chips, "params": info.params}


def render_html(data: dict) -> str:
    """The report page: :func:`report_data`'s values put into the page template."""
    info = data["info"]
    sections = [_subtitle_html(info), *[f'<p class="note">{_e(n)}</p>' for n in info.notes],
                '<table id="summary">' + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                                                 for k, v in data["summary"]) + "</table>",
                "<h2>Final image</h2>", _final_html(info, data["final_png"], data["figures"]),
                "<h2>Time per step</h2>", *_timing_html(data),
                "<h2>Chips: sky and cosmic rays</h2>", *_chips_html(data),
                "<h2>Parameters</h2>", *_params_html(data["params"])]
    return _PAGE.substitute(title=_e(data["title"]), css=_CSS, body="\n".join(s for s in sections if s),
                            written=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"))


def _subtitle_html(info) -> str:
    when = info.written or ""
    return (f'<p class="sub">{len(info.inputs)} input file(s), {len(info.chips)} chip(s)'
            + (f"; written {_e(when)}" if when else "")
            + (f"; dazzle {_e(info.dazzle_version)}" if info.dazzle_version else "") + "</p>")


def _final_html(info, png, figures: bool) -> str:
    if png is None:
        return '<p class="note">No final product to show.</p>'
    w, h = _png_size(png)
    if figures:
        how = ("RA/Dec axes, colour bar (the stretch's range), north/east compass and a scale bar; "
               "the image is shown in the output frame's orientation")
    else:
        fy = info.frame_shape[0] / h if info.frame_shape else 1
        how = ("in the output frame's orientation, row 0 at the bottom"
               + (f"; shown {max(1, round(fy))}x{max(1, round(fy))} block-averaged" if fy > 1.01 else ""))
    return ("<figure>" + _img(png, "img-final", f"final drizzled image {info.root}")
            + f"<figcaption>{_e(os.path.basename(info.output))} SCI, asinh stretch (0.5 to 99.8 "
            f"percentile of covered pixels); {how}; pixels with no data (WHT = 0) in "
            f"{_swatch(preview.NODATA_COLOUR)} purple.</figcaption></figure>")


def _timing_html(data) -> list:
    parts = []
    if data["steps"]:
        trs = ["<tr><th>step</th><th>tasks</th><th>task time (s)</th><th>from (s)</th><th>to (s)</th></tr>"]
        for step, s in data["steps"].items():
            trs.append(f'<tr data-step="{_e(step)}"><td>{_e(step)}</td>' + _num(s.get("tasks"), "{:d}")
                       + _num(s.get("seconds")) + _num(s.get("start")) + _num(s.get("end")) + "</tr>")
        parts += ['<table id="steps">' + "".join(trs) + "</table>", f'<p class="sub">{_STEPS_NOTE}</p>']
    if data["timings"] or data["wall_time"] is not None:
        trs = ["<tr><th>phase</th><th>seconds</th></tr>"]
        trs += [f'<tr data-phase="{_e(k)}"><td>{_e(k)}</td>' + _num(v) + "</tr>" for k, v in data["timings"].items()]
        if data["wall_time"] is not None:
            trs.append('<tr data-phase="wall"><td>whole command</td>' + _num(data["wall_time"]) + "</tr>")
        parts.append('<table id="timings">' + "".join(trs) + "</table>")
    if not data["steps"] and not data["timings"]:
        parts.append('<p class="note">No timings recorded for this run.</p>')
    return parts


def _chips_html(data) -> list:
    info = data["info"]
    extra_cols = [(k, t) for k, t in info.chip_columns]
    sky_unit = f" ({_e(data['sky_unit'])})" if data["sky_unit"] else ""
    trs = ["<tr><th>#</th><th>chip</th><th>exptime (s)</th><th>sky MDRIZSKY" + sky_unit + "</th>"
           "<th>CR pixels flagged</th><th>% of chip</th>" + "".join(f"<th>{_e(t)}</th>" for _, t in extra_cols)
           + "</tr>"]
    for k, c in enumerate(info.chips):
        npix = int(np.prod(c["shape"])) if c.get("shape") else None
        frac = 100.0 * c["cr_pixels"] / npix if npix and c.get("cr_pixels") is not None else None
        trs.append(f'<tr data-chip="{k}"><td class="num">{k + 1}</td><td>{_e(c.get("label"))}</td>'
                   + _num(c.get("exptime"), "{:.1f}") + _num(c.get("sky"), "{:.3f}")
                   + _num(c.get("cr_pixels"), "{:,d}") + _num(frac, "{:.3f}")
                   + "".join(_num(c.get(key), "{:.4g}" if isinstance(c.get(key), float) else "{}")
                             for key, _ in extra_cols) + "</tr>")
    parts = ['<table id="chips">' + "".join(trs) + "</table>", _CHIPS_NOTE.substitute(
        cr=_swatch(preview.CR_COLOUR), dq=_swatch(preview.DQ_COLOUR))]
    for k, (c, (png, what)) in enumerate(zip(info.chips, data["chip_pictures"])):
        if png is None:
            parts.append(f'<p class="note">{_e(c.get("label"))}: {_e(what)}</p>')
            continue
        n = c.get("cr_pixels")
        parts.append("<figure>" + _img(png, f"img-chip-{k}", f"chip {c.get('label')} with its CR mask")
                     + f"<figcaption>{k + 1}. {_e(c.get('label'))}: {_e(what)}"
                     + (f", {n:,d} CR pixels" if n is not None else "") + "</figcaption></figure>")
    if data["more_chips"]:
        parts.append(f'<p class="sub">{data["more_chips"]} more chip(s) not pictured '
                     f"(max_chips={data['max_chips']}).</p>")
    return parts


def _swatch(rgb) -> str:
    r, g, b = rgb
    return f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>'


_CHIPS_NOTE = string.Template(
    '<p class="sub">Each chip as read from its input (asinh stretch), with the pixels its CR mask '
    '(the <code>_crmask.fits</code> products: 1 good, 0 cosmic ray) flags in $cr red, or in $dq blue where '
    "the input's DQ already marks the pixel bad (hot pixels, dead columns: they differ from the median too, so "
    "driz_cr flags them, as AstroDrizzle does). Larger chips are block-averaged; a block is coloured if any of "
    "its pixels is flagged. With matplotlib installed each picture has RA/Dec axes, a colour bar, a compass, "
    "a scale bar and a legend of these colours with their pixel counts.</p>")


def _params_html(params) -> list:
    if not params:
        return ['<p class="note">No parameters recorded.</p>']
    return ['<p class="sub">AstroDrizzle names; rows differing from the default are highlighted. '
            "Pass them back with <code>--set name=value</code> or a <code>.cfg</code> file "
            "(<code>workflows/</code>).</p>",
            '<table id="params"><tr><th>parameter</th><th>value</th><th>default</th><th>meaning</th></tr>'
            + "".join(_param_rows(params)) + "</table>"]


def render_report(run_dir, out=None, *, max_side: int = preview.MAX_SIDE, chip_max_side: int = 1024,
                  max_chips: int = 16) -> str:
    """Write the self-contained HTML report of the run in ``run_dir`` (see :func:`collect_run`)
    to ``out`` (default ``<run_dir>/report.html``; ``<folder of the file>/report.html`` when
    ``run_dir`` names a file).  At most ``max_chips`` chips are pictured.  Returns the path."""
    info = collect_run(run_dir)
    if out is None:
        folder = os.fspath(run_dir) if os.path.isdir(run_dir) else os.path.dirname(os.path.abspath(run_dir))
        out = os.path.join(folder, REPORT_NAME)
    out = os.path.abspath(os.fspath(out))
    base = os.path.dirname(out)
    doc = render_html(report_data(info, base, max_side=max_side, chip_max_side=chip_max_side, max_chips=max_chips))
    os.makedirs(base, exist_ok=True)
    write_bytes_atomic(out, doc)
    return out


# ---------------------------------------------------------------------------------------------
# text summary (the demo's and the CLI's)
# ---------------------------------------------------------------------------------------------

def _table(header, rows, indent="  "):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: indent + "  ".join(  # noqa: E731
        str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    return [fmt(header)] + [fmt(r) for r in rows]


def text_summary(info: RunInfo) -> str:
    """A few lines on a run: output frame, sky and CRs per chip, time per step."""
    lines = []
    if info.output:
        scale = _pixel_scale(info.output) if os.path.isfile(info.output) else None
        shape = f"{info.frame_shape[1]} x {info.frame_shape[0]} pixels" if info.frame_shape else "?"
        lines.append(f"output frame: {shape}" + (f', {scale:.4f}"/pixel' if scale else "")
                     + f"; {len(info.chips)} chip(s) from {len(info.inputs)} exposure(s)")
    if info.chips:
        header = ["chip", "sky (MDRIZSKY)", "CR pixels flagged"] + [t for _, t in info.chip_columns]
        rows = []
        for c in info.chips:
            npix = int(np.prod(c["shape"])) if c.get("shape") else None
            n = c.get("cr_pixels")
            cr = "-" if n is None else (f"{n:d}" + (f" ({100.0 * n / npix:.2f} %)" if npix else ""))
            sky = "-" if c.get("sky") is None else f"{c['sky']:.3f}"
            rows.append([c.get("label", ""), sky, cr] + [str(c.get(k, "-")) for k, _ in info.chip_columns])
        lines.append("per chip:")
        lines += _table(header, rows)
    if info.steps:
        lines.append("time per step (task time, summed over the step's parallel tasks):")
        lines += _table(["step", "tasks", "seconds"],
                        [[step, str(s["tasks"]), f"{s['seconds']:.2f}"] for step, s in info.steps.items()])
    if info.timings:
        lines.append("run time: " + ", ".join(f"{k} {v:.2f} s" for k, v in info.timings.items()))
    return "\n".join(lines)
