"""The Dask graph: chips in, products out -- the pipeline's outline.

:func:`build` adds one layer per step, in AstroDrizzle's order, each from the :class:`Plan` and
the handles of the layers before it (``k`` a chip, ``t`` a tile of an output frame, ``root`` an
exposure)::

    add_static_mask     static-sigs-<k> -> static-sig-<k> -> static-<shape>-<extver>-l<n>-<i>
                        -> static-chip-<k>
    add_sky             sky-stats-<k> -> sky-stat-<k> -> skies -> sky-<k>      (in memory)
    add_single_drizzle  single-chip-<k> or single-section-<k>-<b>
                        -> single-exposure-<root>                             <root>_single_sci/wht.fits
    add_median          median-piece-<root> -> median-tile-<t> -> median-commit    <output>_med.fits
    add_blot_cr         blot-cr-<k> -> crmask-<k>, crclean-<root>             <root>_sci<N>_blt.fits,
                                                                               _crmask.fits, _crclean.fits
    add_final_drizzle   final-chip-<k> or final-section-<k>-<b> -> final-part-<k>[-<b>]-<t>
                        (a chain per tile t) -> final-tile-<t> -> final-commit  <output>_drz.fits
    add_input_dq_update update-dq-after -> update-dq-<i>                      (the inputs' DQ, if asked)

An exposure's single products are written by one task from its chips' sums, a band of rows at a
time (:class:`~dazzle.steps.driz_separate.ExposureBands`): the exposure's whole sums are never
made.  With ``gather_sums`` (the ``processes`` scheduler, which copies a task's inputs to a worker
process and its result back) each tile's pieces are added in one task, ``final-part-<t>``, in the
same order: the same bits.  (With ``in_memory`` an exposure's pieces are added as a tile's:
``single-part-<k>[-<b>]`` chained, or ``single-part-<root>`` gathered.)

The static-mask and sky statistics are computed for two chips per task (``static-sigs-<k>``,
``sky-stats-<k>``: chips ``k`` and ``k+1``, picked apart by ``static-sig-<k>``/``sky-stat-<k>``;
one chip alone where :func:`_pairs` splits a pair): their clipping passes are sequential sums
that wait on every addition, and two run side by side in one loop
(:func:`dazzle.stats.imagestats_many`).

A chip larger than ``section_size`` input pixels a side (1024: an ACS/WFC chip has 8 sections)
is drizzled a section ``b`` at a time: each ``<step>-section-<k>-<b>`` reads only its section
(and a halo of neighbours), weights it and drizzles it (its pixel map computed for it alone)
into sums over that section's box, added in turn; so no task holds a whole chip.

With ``in_memory`` (AstroDrizzle's parameter) the intermediates -- single-drizzled images,
median tiles, blotted images, CR masks -- are task results instead of files: the median tiles
go to the blot tasks whose chips reach them, and only the final image (and any ``_crclean``
images) is written.

A task is given only what it needs: a chip task its chip's small picklable description (never
its pixels, which it reads itself), an exposure task its own chips, a tile task the pieces that
reach the tile.  So the number of tasks and the size of the graph grow with chips plus tiles
touched, never chips times chips or chips times tiles.  The graph is written as one dict
(:class:`Graph`), so adding a task costs the same however large the graph already is.

The final drizzle is a tiled reduction: each chip is drizzled once (Numba kernel) into float64
sums over the box of output pixels it touches; each tile keeps running sums, to which the
pieces of the chips that touch it are added *in chip order*, one task per (chip, tile), so that a
chip's sums are dropped as soon as they are added (memory: the tiles' sums plus the chips in
flight, not every chip's sums at once); the last one divides and writes its rectangle of SCI,
WHT and CTX (and ERR, DQ) straight into the product file (laid out beforehand).  The
median is computed the same way, tile by tile, from only the single-drizzled images that reach
each tile.  No task ever holds an array of the whole output frame; the products are the same
bits whatever the scheduler, the number of workers or the tile size.  Nothing here does
arithmetic on pixels: that is the steps' (:mod:`dazzle.steps`) and the kernels' work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from dazzle import products
from dazzle.geometry import sub_frame
from dazzle.steps import Settings
from dazzle.steps import blot as blot_step
from dazzle.steps import driz_cr as cr_step
from dazzle.steps import median as median_step
from dazzle.steps import sky as sky_step
from dazzle.steps import static_mask as static_step
from dazzle.steps.common import add_part
from dazzle.steps.common import load_chip as common_load_chip
from dazzle.steps.driz_separate import ExposureBands, exposure_box, exposure_sums, single_chip, single_finish
from dazzle.steps.final_drizzle import final_chip, final_finish, final_tile_sums

__all__ = ["Plan", "Graph", "Handle", "build", "tiles", "tiles_touching", "overlaps",
           "add_static_mask", "add_sky", "add_single_drizzle", "add_median", "add_blot_cr", "add_final_drizzle",
           "add_input_dq_update"]


@dataclass
class Plan:
    """Everything the graph needs, decided by the driver before any pixel is read."""

    chips: list                       # dazzle.io.Chip, in input order
    params: dict                      # resolved parameters (for the products' provenance)
    out_dir: str
    final_path: str | None            # None: no final drizzle
    settings: Settings | None = None  # every step's settings, from ``params``
    out_root: str = "final"           # <output> of <output>_med.fits, ...
    single_frame: object = None       # geometry.Frame for driz_separate (None: step off)
    final_frame: object = None        # geometry.Frame for the final drizzle
    single_boxes: list = field(default_factory=list)   # per chip (x0, x1, y0, y1) or None
    final_boxes: list = field(default_factory=list)
    # per chip None (drizzled whole) or its input sections [((x0, x1, y0, y1), box or None), ...]
    single_sections: list = field(default_factory=list)
    final_sections: list = field(default_factory=list)
    section_size: int = 1024          # input pixels a side of those sections
    gather_sums: bool = False         # a tile's (exposure's) pieces added in one task, not a chain
    final_threads: int = 0            # threads of a local run: sectioned chips' final drizzle in chip
                                      # order (add_final_drizzle); 0: no order between chips
    user_static: list = field(default_factory=list)    # per chip user mask (True = good) or None
    ivm: list | None = None           # per chip IVM arrays (final_wht_type=IVM)
    texptime: float = 0.0
    tile_size: int = 2048
    final_canvas: object = None       # products.Canvas laid out by the driver
    median_canvas: object = None
    run_key: str = ""                 # identifies inputs + parameters, for resumed runs
    reuse: dict = field(default_factory=dict)   # products a resumed run takes as they are
    to_memory: bool = False           # the final product kept in memory (no final canvas)
    scattered: list = field(default_factory=list)   # Futures of in-memory pixels on a cluster

    @property
    def in_memory(self) -> bool:
        """AstroDrizzle's ``in_memory``: the intermediates (single-drizzled images, median,
        blotted images, CR masks) are passed between tasks, never written."""
        return bool(self.params.get("in_memory", False))

    def exposures(self) -> dict:
        """``{root: [chip indices]}``, exposures in order of first appearance."""
        by_root: dict = {}
        for k, chip in enumerate(self.chips):
            by_root.setdefault(chip.root, []).append(k)
        return by_root


# ---------------------------------------------------------------------------------------------
# tiles
# ---------------------------------------------------------------------------------------------

def tiles(shape, tile_size):
    """The tiles (x0, x1, y0, y1) of a frame, row by row."""
    ny, nx = shape
    return [(x0, min(x0 + tile_size, nx), y0, min(y0 + tile_size, ny))
            for y0 in range(0, ny, tile_size) for x0 in range(0, nx, tile_size)]


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def tiles_touching(box, shape, tile_size, halo=0):
    """The indices (into :func:`tiles`) of the tiles that ``box`` (x0, x1, y0, y1), widened by
    ``halo`` pixels, overlaps -- found from the grid, not by testing every tile."""
    if box is None:
        return []
    ny, nx = shape
    x0, x1 = max(0, box[0] - halo), min(nx, box[1] + halo)
    y0, y1 = max(0, box[2] - halo), min(ny, box[3] + halo)
    if x0 >= x1 or y0 >= y1:
        return []
    ntx = -(-nx // tile_size)
    return [ty * ntx + tx for ty in range(y0 // tile_size, (y1 - 1) // tile_size + 1)
            for tx in range(x0 // tile_size, (x1 - 1) // tile_size + 1)]


# ---------------------------------------------------------------------------------------------
# task bodies: wiring only (load, call a step, hand on or write)
# ---------------------------------------------------------------------------------------------

def load_chip(chip, resetbits, *, err=True):
    """The chip's pixels, ``resetbits`` cleared (:func:`dazzle.steps.common.load_chip`).  The
    sky and CR tasks pass ``err=False``: only the final drizzle's ERR weights use ERR."""
    return common_load_chip(chip, resetbits, err=err)


def _static_signatures(chips, settings):
    return static_step.chip_signatures([c.load(err=False, dq=False).sci for c in chips], static_sig=settings.static_sig)


def _pick(results, i):
    return results[i]


def _pairs(n):
    """Chips ``0..n-1`` two by two (the last alone when ``n`` is odd): the static-mask and sky
    statistics of a pair are computed side by side in one task (dazzle.stats.imagestats_many:
    1.4x on WFC chips; consecutive chips are an exposure's).

    An even ``n`` with an odd number of pairs (2, 6, 10 chips: single-chip exposures) has its
    last pair split into two one-chip tasks, so that two threads get the same work: 6 chips
    as 3 pairs kept one thread on two pairs while the other idled after one (about 1/3 of
    each of the two steps' time on 6 single-chip 2048 x 2048 exposures)."""
    groups = [list(range(k, min(k + 2, n))) for k in range(0, n, 2)]
    if n % 2 == 0 and len(groups) % 2 == 1:
        groups[-1:] = [[n - 2], [n - 1]]
    return groups


def _static_and(*signatures):
    return static_step.combine(signatures)


def _and_masks(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a, bool) & np.asarray(b, bool)


def _sky_stats(chips, settings, resetbits, *statics):
    return sky_step.chip_sky_stats([load_chip(c, resetbits, err=False) for c in chips], list(statics), settings)


def _skies(chips, settings, *stats):
    user = sky_step.user_skies(chips, settings)
    if user is not None:
        return user
    return sky_step.skies_from_stats(chips, list(stats), settings)


def _skies_all_at_once(chips, settings, resetbits, *statics):
    return sky_step.compute_skies(chips, [load_chip(c, resetbits, err=False) for c in chips], list(statics), settings)


def _chip_sky(skies, k):
    return skies[k]


def _single_chip(chip, frame, box, settings, sky, static, section=None):
    return single_chip(chip, frame, box, settings, sky=sky.drizzle_sky, static_mask=static, section=section)


def _chip_pieces(g, step, k, chip, frame, box, sections, settings, sky, static, crmask=None, ivm=None,
                 after=None):
    """Chip ``k``'s sums for a drizzle step (``step``: "single" or "final"), in the order they
    are added: ``[(piece, handle, box)]`` -- one task for the whole chip (``sections`` None), or
    one per section of its pixels that reaches the frame (reading only that section).  A final
    drizzle task waits for ``after`` too (a handle, or None)."""
    def task(key, box, section=None):
        if step == "single":
            return g.add(key, _single_chip, chip, frame, box, settings, sky, static, section)
        if after is not None:
            return g.add(key, _final_chip_after, after, chip, frame, box, settings, sky, static, crmask, ivm,
                         section)
        return g.add(key, _final_chip, chip, frame, box, settings, sky, static, crmask, ivm, section)

    if sections is None:
        return [(0, task(f"{step}-chip-{k}", box), box)]
    return [(b, task(f"{step}-section-{k}-{b}", sbox, sec), sbox)
            for b, (sec, sbox) in enumerate(sections) if sbox is not None]


def _sections_of(plan_sections, k):
    return plan_sections[k] if plan_sections else None


def _gather_parts(make, order, *sums):
    """The pieces' sums added in ``order`` (``[(chip number, piece)]``) into new sums
    (``make()``): the additions of a chain of ``*-part`` tasks in one task, for the
    ``processes`` scheduler, which would copy a chain's running sums to a worker process and
    back for every add (:func:`_add_part`)."""
    acc = make()
    for (n, piece), part in zip(order, sums):
        add_part(acc, n, part, piece)
    return acc


def _add_part(make, n, piece, acc, sums):
    """Chip ``n``'s sums (of its section ``piece``) added to a tile's or an exposure's (``acc``,
    None for the first: new zero sums, ``make()``), in place: the chip's sums can then be
    dropped.  The previous sums have no other use, so they are not copied (a repeated task is
    caught by :func:`~dazzle.steps.common.add_part`)."""
    return add_part(make() if acc is None else acc, n, sums, piece)


def _write_single(box, frame, settings, out_dir, root, params, exptime, bunit, key, order, *skies_and_parts):
    """Write one exposure's single products from its chips' skies and sums (``skies_and_parts``:
    ``len(skies_and_parts) - len(order)`` skies, then the sums added in ``order``: [(chip
    number, piece)]) a band of rows at a time: the exposure's whole sums are never made
    (:class:`~dazzle.steps.driz_separate.ExposureBands`)."""
    nskies = len(skies_and_parts) - len(order)
    skies, parts = skies_and_parts[:nskies], skies_and_parts[nskies:]
    bands = ExposureBands(box, settings, order, parts)

    def image(which):   # made a few rows at a time as its file is written (never whole in memory)
        return products.RowImage(bands.shape, np.float32, partial(bands.rows, which))

    sci, wht, err = image("sci"), image("wht"), (image("err") if settings.err else None)
    sub = sub_frame(frame, box[0], box[2], box[1] - box[0], box[3] - box[2])
    checksums = {}
    paths = products.write_single_products(out_dir, root, sci, wht, sub, box, params, exptime=exptime,
                                           bunit=bunit, skies=list(skies), err=err, checksums=checksums)
    products.write_manifest(paths, key, checksums)
    return paths


def _single_in_memory(settings, acc):
    """``_write_single`` with ``in_memory``: the exposure's (sci, wht, box), not written."""
    sci, wht, _ = single_finish(acc, settings)
    return sci, wht, acc.box


def _median_piece(single, chips, *skies):
    """The median's description of one exposure (``chips`` and ``skies`` its own): sky in e-
    (lowest over its chips), read noise squared (mean over its chips), exposure time.
    ``single``: its (sci path, wht path), or with ``in_memory`` its (sci, wht, box)."""
    sky_e = min(sky.drizzle_sky * cr_step.conversion_factor(
        in_units="counts", exptime=c.exptime, gain=c.gain, bunit=c.bunit) for c, sky in zip(chips, skies))
    rn2 = float(np.mean([(c.rdnoise or 0.0) ** 2 for c in chips]))
    if len(single) == 3:
        return median_step.describe_arrays(*single, sky=sky_e, rn2=rn2, exptime=chips[0].exptime)
    return median_step.describe_piece(single[0], single[1], sky=sky_e, rn2=rn2, exptime=chips[0].exptime)


def _median_tile(box, settings, canvas, nimages, *pieces):
    if canvas is None:   # in_memory: the tile itself
        return median_step.median_block(pieces, box, settings, nimages=nimages)
    if products.canvas_committed(canvas):
        return box   # recomputed after a lost worker, after the commit: nothing to write
    block = median_step.median_block(pieces, box, settings, nimages=nimages)
    products.write_block(canvas, 0, block, box[2], box[0])
    return box


@dataclass(frozen=True)
class MedianTiles:
    """The median kept in memory (``in_memory``): its tiles and their tasks."""

    boxes: list      # per tile (x0, x1, y0, y1)
    tiles: list      # per tile the handle of its array
    tile_size: int


def _section_from_tiles(box, shape, tile_boxes, *arrays):
    """:func:`dazzle.steps.blot.read_section` from the median's tiles in memory (the same
    section, the same bits)."""
    ny, nx = shape
    m = blot_step.STENCIL_MARGIN
    x0, x1 = max(0, box[0] - m), min(nx, box[1] + m)
    y0, y1 = max(0, box[2] - m), min(ny, box[3] + m)
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for (tx0, tx1, ty0, ty1), a in zip(tile_boxes, arrays):
        ax0, ax1, ay0, ay1 = max(x0, tx0), min(x1, tx1), max(y0, ty0), min(y1, ty1)
        if ax0 < ax1 and ay0 < ay1:
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = a[ay0 - ty0:ay1 - ty0, ax0 - tx0:ax1 - tx0]
    return out, x0, y0


def _blot(chip, median, frame, box, sky, settings):
    """Step 5 for one chip: the median, read over the chip's box (``median`` its path, or
    (tile boxes, tile arrays) kept in memory), blotted onto the chip."""
    if isinstance(median, tuple):
        median, mx0, my0 = _section_from_tiles(box, frame.shape, *median)
    else:
        median, mx0, my0 = blot_step.read_section(median, box, frame.shape)
    return blot_step.blot_chip(median, chip, frame, settings, offset=(mx0, my0), sky=sky.drizzle_sky)


def _write_blot(out_dir, chip, blotted, sky, params):
    return products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_blt.fits", blotted, chip,
                                     params, {"MDRIZSKY": (float(sky.value), "sky (chip units)")})


def _write_crmask(out_dir, chip, good, params, key):
    checksums = {}
    path = products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_crmask.fits",
                                     cr_step.crmask_product(good), chip, params, {}, checksums)
    products.write_manifest(path, key, checksums)
    return path


def _blot_cr(chip, median, frame, box, sky, static, blot_settings, cr_settings, resetbits,
             params, out_dir, key="", tile_boxes=None, *tiles):
    """Blot the median onto a chip (written as its ``_blt`` product) and, when driz_cr is on,
    find its cosmic rays (written as its ``_crmask`` product).  Returns None (no driz_cr) or
    (CR mask (True = good), CR-cleaned SCI or None).  With ``tile_boxes`` (``in_memory``) the
    median is its ``tiles`` and neither product is written."""
    in_memory = tile_boxes is not None
    blotted = _blot(chip, (tile_boxes, *tiles) if in_memory else median, frame, box, sky, blot_settings)
    if not in_memory:
        _write_blot(out_dir, chip, blotted, sky, params)
    if cr_settings is None:
        return None
    data = load_chip(chip, resetbits, err=False)
    good = cr_step.chip_cr_mask(chip, data, blotted, sky.value, static, cr_settings)
    if not in_memory:
        _write_crmask(out_dir, chip, good, params, key)
    return good, (cr_step.crclean(data.sci, blotted, good) if cr_settings.corr else None)


def _write_crclean(chip_path, root, chips, out_dir, params, *results):
    return products.write_crclean(out_dir, root, chip_path, list(zip(chips, results)), params)


def _read_crmask(path):
    from astropy.io import fits

    return fits.getdata(path).astype(bool)


def _cr_only(result):
    return None if result is None else result[0]


def _final_chip(chip, frame, box, settings, sky, static, crmask, ivm, section=None):
    return final_chip(chip, frame, box, settings, sky=sky.drizzle_sky, static_mask=static, cr_mask=crmask,
                      ivm=ivm, section=section)


def _final_chip_after(after, *args):
    return _final_chip(*args)


def _added(*sums):
    """Nothing: a task that waits for a chip's pieces to be added to every tile they reach."""
    return None


def _final_tile(box, settings, canvas, nchips, texptime, acc=None):
    if canvas is not None and products.canvas_committed(canvas):
        return box   # recomputed after a lost worker, after the commit: nothing to write
    if acc is None:   # no chip reaches this tile
        acc = final_tile_sums(box, settings, nchips=nchips)
    sci, wht, ctx, err, dq = final_finish(acc, settings, nchips=nchips, texptime=texptime)
    if canvas is None:   # the product kept in memory: the tile's arrays by extension name
        made = {"SCI": sci, "WHT": wht, "CTX": ctx, "ERR": err, "DQ": None if dq is None else dq.view(np.int32)}
        return box, {k: a for k, a in made.items() if a is not None}
    x0, _, y0, _ = box
    products.write_block(canvas, 1, sci, y0, x0)
    products.write_block(canvas, 2, wht, y0, x0)
    if ctx.shape[0] == 1:
        products.write_block(canvas, 3, ctx[0], y0, x0)
    else:
        for p in range(ctx.shape[0]):
            products.write_block(canvas, 3, ctx[p], y0, x0, plane=p)
    extra = [a for a in (err, None if dq is None else dq.view(np.int32)) if a is not None]
    for hdu, block in enumerate(extra, start=4):   # ERR, DQ (products.final_extensions)
        products.write_block(canvas, hdu, block, y0, x0)
    return box


def _commit(canvas, *done):
    if canvas is None:   # the product kept in memory: its tiles pasted together
        return _paste_tiles(done)
    return products.commit_canvas(canvas)


def _paste_tiles(tiles_done):
    """The whole-frame arrays, by name, from the tiles' ``(box, {name: array})`` (a 3-D array:
    planes)."""
    ny = max(t[0][3] for t in tiles_done)
    nx = max(t[0][1] for t in tiles_done)
    out = {k: np.zeros(a.shape[:-2] + (ny, nx), dtype=a.dtype) for k, a in tiles_done[0][1].items()}
    for (x0, x1, y0, y1), arrays in tiles_done:
        for k, a in arrays.items():
            out[k][..., y0:y1, x0:x1] = a
    return out


def _commit_with_manifest(canvas, key, *done):
    path = products.commit_canvas(canvas)
    products.write_manifest(path, key)
    return path


def _after(*done):
    return None


def _update_dq(path, chips, crbit, preserve, after, *crmasks):
    from dazzle.products import update_input_dq

    return update_input_dq(path, chips, list(crmasks), crbit=crbit, preserve=preserve)


# ---------------------------------------------------------------------------------------------
# the graph under construction
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Handle:
    """A task of the graph being built: as an argument of a later task, its result."""

    key: str


def _call(func, args, holes, *results):
    """Run a task: ``func(*args)`` with the results of its dependencies put into the places
    ``holes`` (their positions in ``args``)."""
    args = list(args)
    for pos, value in zip(holes, results):
        args[pos] = value
    return func(*args)


class Graph:
    """A Dask task graph written directly as a dict (key -> task): adding a task costs the same
    whatever the size of the graph (``dask.delayed`` merges every dependency's whole graph into
    each new task's, which is quadratic in chips).

    A task's function gets its plain arguments through a ``functools.partial`` (so no value is
    ever mistaken for a task key) and the results of its dependencies -- the :class:`Handle`
    arguments, given as positional arguments, never inside a list -- put back in place.
    """

    NAME = "dazzle"

    def __init__(self, suffix: str = ""):
        self.tasks: dict = {}
        self.suffix = suffix   # appended to every key: graphs of several runs can be merged

    def add(self, key: str, func, *args) -> Handle:
        """Task ``key``: ``func(*args)``; returns its handle."""
        key += self.suffix
        holes = tuple(i for i, a in enumerate(args) if isinstance(a, Handle))
        plain = tuple(None if isinstance(a, Handle) else a for a in args)
        self.tasks[key] = (partial(_call, func, plain, holes), *(args[i].key for i in holes))
        return Handle(key)

    def outputs(self, outputs: dict):
        """One ``dask.delayed`` object whose value is ``outputs`` (a dict of handles, other
        values and lists of them) with every handle replaced by its task's result: a last task
        gathers them, so the whole run is one collection (computing many collections of one
        graph costs a pass over the graph for each)."""
        from dask.delayed import Delayed
        from dask.highlevelgraph import HighLevelGraph

        layout, values = [], []
        for name, v in outputs.items():
            items = v if isinstance(v, list) else [v]
            layout.append((name, isinstance(v, list), len(items)))
            values += items
        out = self.add("outputs", _gather, layout, *values).key
        name = self.NAME + self.suffix
        return Delayed(out, HighLevelGraph({name: self.tasks}, {name: set()}), layer=name)


def _gather(layout, *values):
    out, i = {}, 0
    for name, is_list, n in layout:
        out[name] = list(values[i:i + n]) if is_list else values[i]
        i += n
    return out


# ---------------------------------------------------------------------------------------------
# the layers, one per step
# ---------------------------------------------------------------------------------------------

def add_static_mask(g: Graph, plan: Plan) -> list:
    """Step 1: per chip, its static mask (True = good) ANDed with the user's in-memory mask --
    a handle, the user's mask or None.  The chips' signatures are ANDed per mask key (shape,
    chip number) in a tree of pairs: no task holds more than two of them."""
    n = len(plan.chips)
    user = list(plan.user_static) if plan.user_static else [None] * n
    settings = plan.settings.static
    if settings is None:
        return user
    by_key: dict = {}
    for k, chip in enumerate(plan.chips):
        by_key.setdefault(static_step.mask_key(chip), []).append(k)
    sig = {}
    for ks in _pairs(n):
        both = g.add(f"static-sigs-{ks[0]}", _static_signatures, [plan.chips[k] for k in ks], settings)
        sig.update({k: g.add(f"static-sig-{k}", _pick, both, i) for i, k in enumerate(ks)})
    combined = {}
    for key, ks in by_key.items():
        sigs = [sig[k] for k in ks]
        name = f"static-{key[0][0]}x{key[0][1]}-{key[1]}"
        level = 0
        while len(sigs) > 1:
            sigs = [g.add(f"{name}-l{level}-{i // 2}", _static_and, *sigs[i:i + 2])
                    if i + 1 < len(sigs) else sigs[i] for i in range(0, len(sigs), 2)]
            level += 1
        combined[key] = sigs[0]
    return [g.add(f"static-chip-{k}", _and_masks, user[k], combined[static_step.mask_key(c)])
            for k, c in enumerate(plan.chips)]


def add_sky(g: Graph, plan: Plan, statics) -> tuple:
    """Step 2: the skies -- ``(skies, per_chip)``: a handle on every chip's
    :class:`~dazzle.steps.sky.ChipSky` and one handle per chip (``sky-<k>``).  One statistic per
    chip, then one task combining them (localmin, globalmin); the match methods need every chip
    at once; user skies need no pixels."""
    chips, settings, resetbits = plan.chips, plan.settings.sky, plan.settings.resetbits
    if settings.needs_pixels and "match" in settings.skymethod:
        skies = g.add("skies", _skies_all_at_once, chips, settings, resetbits, *statics)
    else:
        stats = [None] * len(chips)
        if settings.needs_pixels:
            for ks in _pairs(len(chips)):
                both = g.add(f"sky-stats-{ks[0]}", _sky_stats, [chips[k] for k in ks], settings, resetbits,
                             *[statics[k] for k in ks])
                for i, k in enumerate(ks):
                    stats[k] = g.add(f"sky-stat-{k}", _pick, both, i)
        skies = g.add("skies", _skies, chips, settings, *stats)
    return skies, [g.add(f"sky-{k}", _chip_sky, skies, k) for k in range(len(chips))]


def add_single_drizzle(g: Graph, plan: Plan, statics, skies) -> dict:
    """Step 3: each exposure drizzled on its own -- ``{root: handle of (sci path, wht path)}``
    (or the paths a resumed run reuses).  One task per chip, one per exposure adding its chips
    and writing the pair."""
    settings, frame = plan.settings.single, plan.single_frame
    singles = {}
    if settings is None or frame is None:
        return singles
    for root, ks in plan.exposures().items():
        box = exposure_box([plan.single_boxes[k] for k in ks])
        if box is None:
            continue
        if ("single", root) in plan.reuse:
            singles[root] = plan.reuse[("single", root)]
            continue
        parts = []   # ((chip number, piece), handle of its sums, part task key), in the order they are added
        for n, k in enumerate(ks, start=1):
            sections = _sections_of(plan.single_sections, k)
            for piece, part, _ in _chip_pieces(g, "single", k, plan.chips[k], frame, plan.single_boxes[k],
                                               sections, settings, skies[k], statics[k]):
                key = f"single-part-{k}" if sections is None else f"single-part-{k}-{piece}"
                parts.append(((n, piece), part, key))
        order, handles = [o for o, _, _ in parts], [h for _, h, _ in parts]
        if not plan.in_memory:   # written from the chips' sums, a band of rows at a time
            first = plan.chips[ks[0]]
            singles[root] = g.add(f"single-exposure-{root}", _write_single, box, frame, settings, plan.out_dir,
                                  root, plan.params, first.exptime, first.bunit, plan.run_key, order,
                                  *[skies[k] for k in ks], *handles)
            continue
        make = partial(exposure_sums, box, settings)   # in memory: the exposure's whole sums
        if plan.gather_sums:
            acc = g.add(f"single-part-{root}", _gather_parts, make, order, *handles)
        else:
            acc = None
            for (n, piece), part, key in parts:
                acc = g.add(key, _add_part, make, n, piece, acc, part)
        singles[root] = g.add(f"single-exposure-{root}", _single_in_memory, settings, acc)
    return singles


def add_median(g: Graph, plan: Plan, singles, skies):
    """Step 4: the median, tile by tile -- a handle on ``<output>_med.fits`` (or the path a
    resumed run reuses, or None).  One task per exposure describes its single-drizzled pair;
    each tile task gets the exposures that reach it, in stack order."""
    if "median" in plan.reuse:
        return plan.reuse["median"]
    settings = plan.settings.median
    if settings is None or (plan.median_canvas is None and not plan.in_memory):
        return None
    shape, ts = plan.single_frame.shape, plan.tile_size
    tile_list = tiles(shape, ts)
    per_tile = [[] for _ in tile_list]
    pieces = 0
    for root, ks in plan.exposures().items():
        if root not in singles:
            continue
        piece = g.add(f"median-piece-{root}", _median_piece, singles[root], [plan.chips[k] for k in ks],
                      *[skies[k] for k in ks])
        box = exposure_box([plan.single_boxes[k] for k in ks])
        for t in tiles_touching(box, shape, ts, halo=settings.halo):
            per_tile[t].append(piece)
        pieces += 1
    done = [g.add(f"median-tile-{t}", _median_tile, tb, settings, plan.median_canvas, pieces, *per_tile[t])
            for t, tb in enumerate(tile_list)]
    if plan.median_canvas is None:
        return MedianTiles(tile_list, done, ts)
    return g.add("median-commit", _commit_with_manifest, plan.median_canvas, plan.run_key, *done)


def add_blot_cr(g: Graph, plan: Plan, median, statics, skies) -> tuple:
    """Steps 5 and 6: one task per chip blots the median onto it and, with driz_cr on, finds
    its cosmic rays -- ``(crmasks, other)``: per chip a handle on its CR mask (True = good), or
    None when no CR masks are made, and the handles of the other products (crclean files;
    blot-only tasks)."""
    blot_settings, cr_settings = plan.settings.blot, plan.settings.cr
    if median is None or blot_settings is None:
        return None, []
    results = [None if ("crmask", k) in plan.reuse else
               g.add(f"blot-cr-{k}", _blot_cr, chip, median, plan.single_frame, plan.single_boxes[k], skies[k],
                     statics[k], blot_settings, cr_settings, plan.settings.resetbits, plan.params, plan.out_dir,
                     plan.run_key, *_median_args(median, plan.single_boxes[k], plan.single_frame.shape))
               for k, chip in enumerate(plan.chips)]
    if cr_settings is None:
        return None, [r for r in results if r is not None]
    crmasks = [g.add(f"crmask-{k}", _read_crmask, plan.reuse[("crmask", k)])
               if ("crmask", k) in plan.reuse else
               g.add(f"crmask-{k}", _cr_only, r) for k, r in enumerate(results)]
    other = []
    if cr_settings.corr:
        # (a resumed run keeps the crclean files of chips whose masks it reuses)
        other = [g.add(f"crclean-{root}", _write_crclean, plan.chips[ks[0]].path, root, [plan.chips[k] for k in ks],
                       plan.out_dir, plan.params, *[results[k] for k in ks])
                 for root, ks in plan.exposures().items() if all(results[k] is not None for k in ks)]
    return crmasks, other


def _median_args(median, box, shape):
    """The blot task's extra arguments: with the median in memory, the boxes and tasks of the
    tiles its chip's box (plus the interpolation margin) reaches; else none."""
    if not isinstance(median, MedianTiles):
        return ()
    ts = tiles_touching(box, shape, median.tile_size, halo=blot_step.STENCIL_MARGIN)
    return ([median.boxes[t] for t in ts], *[median.tiles[t] for t in ts])


def add_final_drizzle(g: Graph, plan: Plan, statics, skies, crmasks):
    """Step 7: the final drizzle, a tiled reduction -- a handle on ``<output>_drz.fits`` (or
    None).  One task per chip drizzles it into sums over its box; for each tile the box
    reaches, a task adds the chip's piece to the tile's sums, chip after chip in chip order
    (a chain per tile: a chip's sums are dropped as soon as its pieces are added); each tile
    task then divides and writes.

    In a local run (``plan.final_threads`` threads) the sections of a chip drizzled in
    sections wait until the pieces of the chip ``ceil(threads / sections)`` before it are
    added (``final-added-<k>``): dask's local scheduler runs the task made ready last first,
    so the sections of two chips whose CR masks came at once were drizzled interleaved, and
    the later chip's sums waited in memory for the earlier chip's (a tile adds chip after
    chip).  Measured (2 threads, alternating runs): peak RSS on 6 exposures of one 2048 x 2048
    chip 580-690 -> 570-589 MiB, on the WFC set 1245-1364 -> 1130-1158 MiB; wall time the same.
    The same additions in the same order: the same bits.  A cluster's run keeps the chips
    unordered (its workers may outnumber a chip's sections)."""
    settings, frame = plan.settings.final, plan.final_frame
    if settings is None or plan.final_path is None:
        return None
    tile_list = tiles(frame.shape, plan.tile_size)
    acc = [None] * len(tile_list)
    gathered = [[] for _ in tile_list]   # plan.gather_sums: each tile's pieces, in order
    nchips = len(plan.chips)
    make = [partial(final_tile_sums, tb, settings, nchips=nchips) for tb in tile_list]
    ordered = (plan.final_threads > 0 and not plan.gather_sums
               and any(_sections_of(plan.final_sections, k) for k in range(nchips)))
    added = []   # per chip: a handle on its pieces being in every tile's sums (ordered), or None
    for k, chip in enumerate(plan.chips):
        sections = _sections_of(plan.final_sections, k)
        after = None
        if ordered and sections:
            back = -(-plan.final_threads // len(sections))   # chips whose sections may run at once
            after = added[k - back] if k >= back else None
        pieces = _chip_pieces(g, "final", k, chip, frame, plan.final_boxes[k], sections, settings, skies[k],
                              statics[k], None if crmasks is None else crmasks[k],
                              None if plan.ivm is None else plan.ivm[k], after=after)
        touched = []
        for piece, s, box in pieces:
            for t in tiles_touching(box, frame.shape, plan.tile_size):
                if plan.gather_sums:
                    gathered[t].append(((k + 1, piece), s))
                    continue
                key = f"final-part-{k}-{t}" if sections is None else f"final-part-{k}-{piece}-{t}"
                acc[t] = g.add(key, _add_part, make[t], k + 1, piece, acc[t], s)
                touched.append(t)
        added.append(g.add(f"final-added-{k}", _added, *[acc[t] for t in dict.fromkeys(touched)])
                     if ordered and touched else None)
    for t, parts in enumerate(gathered):
        if parts:
            acc[t] = g.add(f"final-part-{t}", _gather_parts, make[t], [o for o, _ in parts], *[h for _, h in parts])
    done = [g.add(f"final-tile-{t}", _final_tile, tb, settings, plan.final_canvas, nchips, plan.texptime,
                  *([] if acc[t] is None else [acc[t]])) for t, tb in enumerate(tile_list)]
    return g.add("final-commit", _commit, plan.final_canvas, *done)


def add_input_dq_update(g: Graph, plan: Plan, crmasks, after) -> list:
    """dazzle's optional last layer: the CR flags ORed into the inputs' DQ (each input backed
    up first unless ``preserve=False``), one task per input file, after every product is written (``after``)."""
    crbit = plan.settings.crbit
    if crbit is None or crmasks is None:
        return []
    wait = g.add("update-dq-after", _after, *[x for x in after if x is not None])
    by_path: dict = {}
    for k, c in enumerate(plan.chips):
        by_path.setdefault(c.path, []).append(k)
    return [g.add(f"update-dq-{i}", _update_dq, path, [plan.chips[k] for k in ks], crbit,
                  plan.settings.preserve, wait,
                  *[crmasks[k] for k in ks])
            for i, (path, ks) in enumerate(by_path.items())]


# ---------------------------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------------------------

def build(plan: Plan, *, suffix: str = ""):
    """The pipeline: each step adds its layer from the plan and the layers before it.

    Returns one ``dask.delayed`` object; its value is what the run produces:
    ``{"single": [(sci, wht) paths per exposure], "median": path, "final": path, "skies":
    [ChipSky per chip], "crmasks": [per chip] or None (no driz_cr), "updated": [...],
    "other": [...]}`` (None for a product not made; ``final`` is the list of the whole frame's
    arrays, SCI, WHT, CTX..., when the plan has no final canvas: the product kept in memory).
    ``suffix`` is appended to every task key.
    """
    g = Graph(suffix)
    statics = add_static_mask(g, plan)
    skies, chip_skies = add_sky(g, plan, statics)
    singles = add_single_drizzle(g, plan, statics, chip_skies)
    median = add_median(g, plan, singles, chip_skies)
    crmasks, other = add_blot_cr(g, plan, median, statics, chip_skies)
    final = add_final_drizzle(g, plan, statics, chip_skies, crmasks)
    if plan.in_memory:   # the intermediates stay inside the graph: not results of the run
        singles, median = {}, None
    updated = add_input_dq_update(g, plan, crmasks, [final, median, *singles.values()])
    return g.outputs({"single": list(singles.values()), "median": median, "final": final, "skies": skies,
                      "crmasks": crmasks, "updated": updated, "other": other})
