"""drizzlepac's Python entry point, so that an existing script changes one import::

    from drizzlepac.astrodrizzle import AstroDrizzle     # before
    from dazzle import AstroDrizzle                      # after

    AstroDrizzle("*_flt.fits", output="mosaic", configobj="astrodrizzle.cfg", final_scale=0.05)

:func:`AstroDrizzle` takes drizzlepac's arguments (``input``, ``mdriztab``, ``editpars``,
``configobj``, ``wcsmap``, and every parameter by keyword) and runs :func:`dazzle.run`.
"""

from __future__ import annotations

import os

from dazzle.params import ParameterError

__all__ = ["AstroDrizzle"]


def _cfg_input(configobj):
    """The ``input`` line of an AstroDrizzle ``.cfg`` file, or None."""
    from dazzle.params import _read_config_lines

    if not isinstance(configobj, (str, os.PathLike)) or not os.path.isfile(configobj):
        return None
    with open(configobj, encoding="utf-8") as fh:
        value = _read_config_lines(fh.read(), os.fspath(configobj)).get("input")
    return value if value and value.strip() else None


def AstroDrizzle(input=None, output=None, configobj=None, *, mdriztab=False, editpars=False, wcsmap=None,
                 **params):
    """drizzlepac's ``AstroDrizzle(input, mdriztab=False, editpars=False, configobj=None,
    wcsmap=None, **input_dict)`` on dazzle (:func:`dazzle.run`).

    ``input``: as AstroDrizzle's (names, a glob, an ``@file``, an association table), or
    dazzle's in-memory inputs; when None, the ``input`` line of the ``configobj`` file.
    ``output``: the product's name; None or ``""`` gives AstroDrizzle's default name (for an
    in-memory result call ``dazzle.run(..., output=None)``).  ``configobj``: an AstroDrizzle
    ``.cfg`` file (or a dict); keyword parameters win over it, as in drizzlepac.
    ``mdriztab=True``, ``editpars=True`` and a ``wcsmap`` are refused (dazzle reads no MDRIZTAB,
    has no parameter editor and no WCS mapping objects).  dazzle's own keywords
    (``scheduler``, ``static_mask``, ``ivm``, ...) pass through.  Returns
    :class:`dazzle.pipeline.RunResult`.
    """
    from dazzle.pipeline import run

    for name, value, why in (("mdriztab", mdriztab, "dazzle reads no MDRIZTAB reference tables"),
                             ("editpars", editpars, "dazzle has no interactive parameter editor"),
                             ("wcsmap", wcsmap is not None, "custom WCS mapping objects are not supported")):
        if value:
            raise ParameterError(f"AstroDrizzle({name}=...): {why}", name=name)
    if input is None:
        input = _cfg_input(configobj)
        if input is None:
            raise ParameterError("AstroDrizzle: no input (give input=, or an 'input' line in configobj)",
                                 name="input")
    return run(input, "" if output is None else output, configobj=configobj, **params)
