"""The drizzle steps' sums (``dazzle.steps.common``): the chain of per-tile sums the graph
builds (a chip added at a time, issue 11) and the context found from the weights.

Cost: about 2 s (one small simulated set, a few small drizzles)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dazzle.params import resolve
from dazzle.pipeline import plan_run
from dazzle.steps import common
from dazzle.steps.common import DrizzleSettings, Sums, add_part, add_sums, section_sums, load_chip, new_tile_sums
from dazzle.steps.final_drizzle import final_combine, final_finish, final_tile_sums


@pytest.fixture(scope="module")
def small_plan(simulated, tmp_path_factory):
    sim = simulated(n_exposures=3, chips=1, size=48, seed=5)
    values = resolve(None, output=str(tmp_path_factory.mktemp("sums") / "s"), static=False, skysub=False,
                     median=False, blot=False, driz_cr=False, driz_separate=False, final_dq=True)
    return values, plan_run(sim.files, values["output"], values)


def _sums(values, plan, **change):
    settings = dataclasses.replace(DrizzleSettings.from_params(values, "final"), **change)
    return settings, [section_sums(c, plan.final_frame, plan.final_boxes[k], settings, bit=1)
                      for k, c in enumerate(plan.chips)]


def test_tiles_added_chip_by_chip_are_the_whole_frame_at_once(small_plan):
    """The graph's chain (a tile's sums, then each chip added in place) gives the very bits
    of adding every chip's sums at once, for any tiling."""
    values, plan = small_plan
    settings, parts = _sums(values, plan)
    ny, nx = plan.final_frame.shape
    whole = final_combine(list(enumerate(parts, start=1)), (0, nx, 0, ny), settings, nchips=len(parts),
                          texptime=plan.texptime)
    for ts in (16, 23, max(nx, ny)):
        out = [np.zeros_like(a) for a in whole[:2]] + [np.zeros_like(whole[2])] + [np.zeros_like(a) for a in whole[3:]]
        for y0 in range(0, ny, ts):
            for x0 in range(0, nx, ts):
                box = (x0, min(nx, x0 + ts), y0, min(ny, y0 + ts))
                acc = final_tile_sums(box, settings, nchips=len(parts))
                for n, s in enumerate(parts, start=1):
                    assert add_part(acc, n, s) is acc
                tile = final_finish(acc, settings, nchips=len(parts), texptime=plan.texptime)
                sl = np.s_[box[2]:box[3], box[0]:box[1]]
                for o, a in zip(out, tile):
                    o[..., box[2]:box[3], box[0]:box[1]] = a
                assert np.array_equal(out[0][sl], whole[0][sl], equal_nan=True)
        for o, w in zip(out, whole):
            assert np.array_equal(o, w, equal_nan=True)
    assert np.nansum(whole[1]) > 0 and whole[3] is not None and whole[4] is not None


def test_a_chip_added_twice_is_refused(small_plan):
    values, plan = small_plan
    _, parts = _sums(values, plan)
    acc = new_tile_sums((0, 10, 0, 10), nchips=2)
    add_part(acc, 2, parts[1])
    with pytest.raises(RuntimeError, match=r"chip 2 \(piece 0\) added .* after chip 2 \(piece 0\)"):
        add_part(acc, 2, parts[1])
    with pytest.raises(RuntimeError, match="chip 1 .* added"):
        add_part(acc, 1, parts[0])
    add_part(acc, 2, parts[1], piece=3)   # a chip's sections: in order
    with pytest.raises(RuntimeError, match=r"chip 2 \(piece 1\) added"):
        add_part(acc, 2, parts[1], piece=1)


@pytest.mark.parametrize("kernel", ["square", "turbo", "point", "gaussian", "lanczos3"])
def test_context_from_the_weights_is_the_kernels_context(small_plan, kernel, monkeypatch):
    """With one-signed weights the context is ``den > 0`` (not kept by the kernel); it equals
    the context the kernel keeps, which lanczos (negative lobes) and negative weights still use."""
    values, plan = small_plan
    settings, parts = _sums(values, plan, kernel=kernel)
    monkeypatch.setattr(common, "ONE_SIGN_KERNELS", frozenset())   # the kernel keeps the context
    _, kept = _sums(values, plan, kernel=kernel)
    for s, k in zip(parts, kept):
        assert k.ctx.dtype == np.int32
        assert s.ctx.dtype == (np.int32 if kernel == "lanczos3" else bool)
        assert np.array_equal(s.ctx != 0, k.ctx != 0)
        assert np.array_equal(s.num, k.num) and np.array_equal(s.den, k.den)
        assert (s.ctx != 0).sum() > 1000


def test_negative_weights_keep_the_kernels_context(small_plan):
    """A negative weight (an IVM with negative pixels) can cancel a positive one: the
    context then comes from the kernel, where the positive weight landed."""
    values, plan = small_plan
    settings = DrizzleSettings.from_params(values, "final")
    chip = plan.chips[0]
    data = load_chip(chip, settings.resetbits)
    ivm = np.ones(data.sci.shape, np.float32)
    ivm[::2, ::2] = -1.0
    settings = dataclasses.replace(settings, wht_type="IVM", err=False)
    s = section_sums(chip, plan.final_frame, plan.final_boxes[0], settings, bit=1, ivm=ivm)
    assert s.ctx.dtype == np.int32
    assert ((s.ctx != 0) != (s.den > 0)).any()   # where den > 0 would say otherwise
    acc = add_sums([(1, s)], (s.x0, s.x1, s.y0, s.y1))
    assert np.array_equal(acc.context(1)[0] != 0, s.ctx != 0)


@pytest.mark.parametrize("nchips", [1, 8, 9, 32, 33, 70])
def test_context_bits_of_many_chips(nchips):
    """The tiles keep the context as one bit per chip (uint8 planes, issue 11) and give it as
    the products' int32 planes: chip n is bit (n-1) % 32 of plane (n-1) // 32, bit 31 too."""
    from dazzle.facts import context_bit, context_plane, context_planes

    rng = np.random.default_rng(nchips)
    acc = new_tile_sums((0, 7, 0, 5), nchips=nchips)
    want = np.zeros((context_planes(nchips), 5, 7), np.int32)
    for n in range(1, nchips + 1):
        where = rng.random((5, 7)) < 0.5
        s = Sums(0, 0, np.zeros((5, 7)), np.zeros((5, 7)), where)
        add_part(acc, n, s)
        want[context_plane(n)][where] |= context_bit(n)
    assert acc.ctx.dtype == np.uint8 and acc.ctx.shape[0] == -(-nchips // 8)
    got = acc.context(context_planes(nchips))
    assert got.dtype == np.int32 and np.array_equal(got, want)
    assert nchips < 32 or (got[0] < 0).any()   # bit 31: the sign bit of an int32 plane


@pytest.mark.parametrize("err", [False, True])
def test_exposure_bands_are_the_whole_exposure_sums(err):
    """The single products are written from the chips' sums a band of rows at a time
    (ExposureBands: the exposure's whole sums are never made): every band of every image is
    the same bits as single_finish of the sums added over the whole box, for parts that
    overlap (pixels get three chips: the order of the additions matters), sections of one chip,
    a part outside the box and a chip that reached nothing (None); a band's sums are added once
    for its images."""
    from dazzle.steps.driz_separate import ExposureBands, exposure_sums, single_finish

    settings = DrizzleSettings.from_params(resolve({"driz_sep_err": err}), "single")
    rng = np.random.default_rng(4)

    def part(box):
        x0, x1, y0, y1 = box
        shape = (y1 - y0, x1 - x0)
        den = rng.random(shape) * 3
        den[rng.random(shape) < 0.2] = 0.0     # pixels the part did not reach
        num = rng.normal(size=shape) * 50 * (den > 0)
        return Sums(x0, y0, num, den, None, (rng.random(shape) * (den > 0)) if err else None)

    box = (10, 47, 3, 40)
    order = [(1, 0), (1, 1), (2, 0), (3, 0), (4, 0), (5, 0)]
    parts = [part((10, 30, 3, 25)), part((10, 30, 25, 40)), part((22, 47, 15, 40)), None,
             part((18, 35, 10, 33)), part((50, 60, 3, 40))]
    whole = exposure_sums(box, settings)
    for (n, piece), p in zip(order, parts):
        add_part(whole, n, p, piece)
    # pixels where three parts add: another order would give other bits
    assert (whole.den[20:22, 14:18] > 0).any()
    other = exposure_sums(box, settings)
    for i, p in enumerate(parts[::-1], start=1):
        add_part(other, i, p)
    assert other.num.tobytes() != whole.num.tobytes()
    expect = dict(zip(("sci", "wht", "err"), single_finish(whole, settings)))
    bands = ExposureBands(box, settings, order, parts)
    assert bands.shape == (37, 37)
    for r0, r1 in ((0, 37), (0, 1), (5, 17), (36, 37), (12, 30)):
        for which in ("sci", "wht") + (("err",) if err else ()):
            got = bands.rows(which, r0, r1)
            assert got.dtype == np.float32 and got.shape == (r1 - r0, 37)
            assert got.tobytes() == expect[which][r0:r1].tobytes(), (which, r0, r1)
    band = bands.band(12, 30)
    assert bands.band(12, 30) is band and bands.band(0, 18) is not band   # kept while asked again
    with pytest.raises(ValueError, match="part numbers"):
        ExposureBands(box, settings, order[:2], parts)


@pytest.mark.parametrize("fillval, err", [(None, True), (-7.5, False)])
def test_single_images_made_a_few_rows_at_a_time_are_the_whole_ones(fillval, err, monkeypatch):
    """ExposureBands (the single products are written from it, a few rows at a time) gives
    single_finish's science, weight and error, bit for bit, for any rows asked: zero and
    negative weights, the fill value, NaN where no weight; a band's images are finished once
    for all of them (they were finished once per image)."""
    from dazzle.steps import driz_separate
    from dazzle.steps.driz_separate import ExposureBands, single_finish

    params = resolve({"driz_sep_fillval": fillval, "driz_sep_err": err})
    settings = DrizzleSettings.from_params(params, "single")
    acc = new_tile_sums((3, 40, 5, 36), nchips=0, var=err)
    rng = np.random.default_rng(11)
    acc.num[...] = rng.normal(size=acc.num.shape) * 100
    acc.den[...] = rng.normal(size=acc.den.shape) + 0.5
    acc.den[::4, ::3] = 0.0
    if err:
        acc.var[...] = rng.random(acc.var.shape)
    sci, wht, e = single_finish(acc, settings)
    assert (e is not None) == err and np.isnan(sci).sum() == 0 and (sci == (0.0 if fillval is None else -7.5)).any()
    finished = []

    def counted(a, st):
        finished.append(a.box)
        return single_finish(a, st)

    monkeypatch.setattr(driz_separate, "single_finish", counted)
    bands = ExposureBands(acc.box, settings, [(1, 0)], [Sums(3, 5, acc.num, acc.den, None, acc.var)])
    for r0, r1 in ((0, 31), (0, 1), (5, 17), (30, 31), (12, 12)):
        got = {w: bands.rows(w, r0, r1) for w in ("sci", "wht") + (("err",) if err else ())}
        assert got["sci"].dtype == got["wht"].dtype == np.float32 and got["sci"].shape == (r1 - r0, 37)
        assert got["sci"].tobytes() == sci[r0:r1].tobytes() and got["wht"].tobytes() == wht[r0:r1].tobytes()
        if err:
            assert got["err"].tobytes() == e[r0:r1].tobytes()
    assert finished == [(3, 40, 5 + r0, 5 + r1) for r0, r1 in ((0, 31), (0, 1), (5, 17), (30, 31), (12, 12))]
