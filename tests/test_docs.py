"""The public modules' API documentation (issue #15): ``__all__`` in every public module and a
numpydoc docstring on everything it exports.  Read from the source with :mod:`ast` (about
0.3 s); checking that ``__all__``'s names exist imports the modules (about 1.5 s more)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dazzle"

#: the public modules: the packages, their modules, and the driver layer
PUBLIC = sorted({PACKAGE / "__init__.py", *(PACKAGE / "kernels").glob("*.py"),
                 *(PACKAGE / "steps").glob("*.py"),
                 *(PACKAGE / n for n in ("geometry.py", "atomic.py", "products.py", "pipeline.py",
                                         "cluster.py", "cli.py"))})

#: docstrings rewritten elsewhere (kernels/drizzle.py's accumulators): exported, documented,
#: but not yet held to every parameter being listed
_PENDING = {("kernels/drizzle.py", "drizzle_add"), ("kernels/drizzle.py", "drizzle_sums")}

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}\n", re.M)


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _all_of(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def _sections(doc: str) -> dict:
    """numpydoc sections of a docstring: ``{title: body}``."""
    marks = list(_SECTION.finditer(doc))
    return {m.group(1): doc[m.end(): marks[k + 1].start() if k + 1 < len(marks) else len(doc)]
            for k, m in enumerate(marks)}


def _documented(body: str) -> set:
    """Names listed in a Parameters section (``a, b : type`` lines at the section's margin)."""
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            for name in line.split(" : ")[0].split(","):
                names.add(name.strip().lstrip("*"))
    return names


def _arguments(fn: ast.FunctionDef) -> list:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return names


def _problems(path: Path, rel: str | None = None) -> list:
    rel = _rel(path) if rel is None else rel
    tree = ast.parse(path.read_text())
    exported = _all_of(tree)
    if exported is None:
        return [f"{rel}: no literal __all__"]
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name not in exported:
            continue
        where = f"{rel}:{node.name}"
        doc = ast.get_docstring(node) or ""
        if not doc.strip():
            out.append(f"{where}: no docstring")
            continue
        if isinstance(node, ast.ClassDef) or (rel, node.name) in _PENDING:
            continue
        args = _arguments(node)
        if len(args) < 2:
            continue
        sections = _sections(doc)
        if "Parameters" not in sections:
            out.append(f"{where}: no numpydoc Parameters section")
            continue
        missing = [a for a in args if a not in _documented(sections["Parameters"])]
        if missing:
            out.append(f"{where}: Parameters does not describe {', '.join(missing)}")
    return out


def test_public_modules_have_all_and_numpydoc():
    assert len(PUBLIC) >= 20
    problems = [p for path in PUBLIC for p in _problems(path)]
    assert problems == []


@pytest.mark.parametrize("path", PUBLIC, ids=_rel)
def test_all_names_exist(path):
    module = "dazzle" + ("" if path.name == "__init__.py" and path.parent == PACKAGE else
                         "." + _rel(path)[:-3].replace("/", ".").removesuffix(".__init__"))
    exported = _all_of(ast.parse(path.read_text()))
    mod = importlib.import_module(module)
    assert [n for n in exported if not hasattr(mod, n)] == []
    assert len(set(exported)) == len(exported)


def test_the_checker_sees_what_is_missing(tmp_path):
    p = tmp_path / "x.py"
    p.write_text('__all__ = ["f", "g", "h", "C"]\n'
                 'def f(a, *, b=1):\n    """F.\n\n    Parameters\n    ----------\n    a : int\n        A.\n    """\n'
                 'def g(a, b):\n    """G, prose only."""\n'
                 'def h(a, b, **kw):\n    """H.\n\n    Parameters\n    ----------\n    a, b : int\n'
                 '    **kw\n        More.\n\n    Returns\n    -------\n    c : int\n    """\n'
                 'class C:\n    pass\n')
    assert _problems(p, "x.py") == ["x.py:f: Parameters does not describe b",
                                    "x.py:g: no numpydoc Parameters section", "x.py:C: no docstring"]
    p.write_text("def f(a, b):\n    pass\n")
    assert _problems(p, "x.py") == ["x.py: no literal __all__"]
