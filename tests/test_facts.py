"""dazzle.facts: the step and layer tables, task names, kernel names, context bits -- and the
package's import structure (no circle between modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from dazzle import facts, params
from dazzle.facts import context_bit, context_plane, context_planes, step_of

PACKAGE = Path(__file__).resolve().parent.parent / "dazzle"


def test_task_names_map_to_steps():
    assert step_of("static-sig-3") == step_of("static-sigs-2") == "static mask"
    assert step_of("static-256x256-1-l0-0") == step_of("static-chip-0") == "static mask"
    assert step_of("skies") == step_of("sky-stat-0") == step_of("sky-stats-0") == step_of("sky-3") == "sky"
    assert step_of("single-exposure-dz01") == step_of("single-chip-7") == "driz_separate"
    assert step_of("median-piece-dz01") == step_of("median-commit") == "median"
    assert step_of("blot-cr-2") == step_of("crmask-2") == step_of("crclean-dz01") == "blot+driz_cr"
    assert step_of(("final-tile-0", 1)) == step_of(b"final-part-3-7") == "final drizzle"
    assert step_of("update-dq-0") == "update_input_dq"
    assert step_of("getitem-abc") == step_of("skyline") == "other"
    assert facts.prefix_of("final-part-3-7") == "final-part" and facts.prefix_of("finalize-x") is None


def test_steps_layers_and_switches_agree():
    assert [s.number for s in facts.STEPS] == list(range(1, 8))
    assert params.SWITCHES == {s.key: s.switch for s in facts.STEPS}
    assert all(params.PARAMETERS[s.switch].kind == "bool" for s in facts.STEPS)
    assert all(s.key in params.STEPS for s in facts.STEPS)
    # every step runs in exactly one layer; every layer is one function of dazzle.graph
    from dazzle import graph

    ran = [k for layer in facts.LAYERS for k in layer.steps]
    assert sorted(ran) == sorted(s.key for s in facts.STEPS)
    for layer in facts.LAYERS:
        assert callable(getattr(graph, layer.function)), layer.function
    for s in facts.STEPS:
        __import__(s.module)


def test_kernel_names_are_the_kernels():
    from dazzle.kernels import COMBINE_TYPES, INTERPOLATORS, KERNELS

    assert facts.KERNELS == KERNELS == params.KERNELS
    assert params.PARAMETERS["final_kernel"].choices == facts.KERNELS
    # the parameter table cannot import the Numba kernels: their choices are checked here
    assert set(params.PARAMETERS["blot_interp"].choices) == set(INTERPOLATORS)
    assert set(params.PARAMETERS["combine_type"].choices) == set(COMBINE_TYPES)


def test_box_pad_covers_the_reach():
    """The pipeline's box margin (dazzle.kernels.catalog.box_pad) holds every deposit: at least
    kernel_reach for every kernel, pixfrac and scale (regression: square with pixfrac > 2 and
    lanczos onto smaller output pixels had a margin below their reach)."""
    from dazzle.kernels import box_pad, kernel_reach

    for kernel in facts.KERNELS:
        for pixfrac in (0.0005, 0.1, 0.5, 0.8, 1.0, 1.5, 3.0):
            for ratio in (0.25, 0.5, 1.0, 2.0):
                pad = box_pad(kernel, pixfrac, ratio)
                for table in ("drizzle", "drizzlepac"):   # lanczos: either table
                    assert pad >= max(kernel_reach(kernel, pixfrac, ratio, table), 1.0), (kernel, pixfrac, ratio, pad)
    assert box_pad("square", 3.0) == 1.5 and box_pad("lanczos3", 1.0, 0.5) == 5.0
    # the values the single products' shapes were made with (kept: products bit-identical)
    assert [box_pad(k, 1.0) for k in facts.KERNELS] == [1.0, 1.0, 1.0, 2.2, 3.0, 4.0, 1.5]


def test_kernel_facts_load_without_numba():
    """facts, params and the kernels' catalog are plain Python: Numba loads with a kernel."""
    import subprocess
    import sys

    code = ("import sys, dazzle.params, dazzle.facts, dazzle.kernels\n"
            "assert 'numba' not in sys.modules, 'numba imported'\n"
            "from dazzle.kernels import blot, drizzle_add\n"
            "import dazzle.kernels.blotting\n"
            "from dazzle.kernels import blot as again\n"
            "assert 'numba' in sys.modules and again is blot and callable(drizzle_add)\n"
            "print(sorted(dazzle.kernels.__all__) == sorted(n for n in dir(dazzle.kernels) if n in dazzle.kernels.__all__))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_shared_choices():
    from dazzle.steps import driz_cr, sky

    assert params.PARAMETERS["skymethod"].choices == facts.SKY_METHODS == sky.SKY_METHODS
    assert params.PARAMETERS["skystat"].choices == facts.SKY_STATS == sky.SKY_STATS
    assert params.PARAMETERS["driz_cr_noise"].choices == facts.NOISE_MODELS == driz_cr.NOISE_MODELS


def test_context_bits():
    assert [context_planes(n) for n in (0, 1, 32, 33, 64, 65)] == [1, 1, 1, 2, 2, 3]
    assert [context_plane(n) for n in (1, 32, 33, 64, 65)] == [0, 0, 1, 1, 2]
    assert context_bit(1) == 1 and context_bit(2) == 2 and context_bit(33) == 1
    assert context_bit(32) == np.int32(-2 ** 31) and context_bit(32).dtype == np.int32
    plane = np.zeros(3, np.int32)
    plane |= context_bit(32)
    assert plane.view(np.uint32)[0] == 2 ** 31


def _imports(path: Path) -> set:
    """The dazzle modules ``path`` imports, at the top or inside functions (lazy imports)."""
    mod = "dazzle." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    mod = mod.removesuffix(".__init__")
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dazzle")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("dazzle"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_no_import_circle():
    files = sorted(PACKAGE.rglob("*.py"))
    names = {("dazzle." + ".".join(f.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): f
             for f in files}
    graph = {m: {i for i in _imports(f) if i in names and i != m} for m, f in names.items()}
    # a package's __init__ importing its own submodules is not a circle
    for m in graph:
        graph[m] = {i for i in graph[m] if not (m == i.rpartition(".")[0] and names[m].name == "__init__.py")
                    and not (i != "dazzle" and m.startswith(i + ".") and names[i].name == "__init__.py")}
    graph = {m: deps - {"dazzle"} for m, deps in graph.items()}
    state, path, circles = {}, [], []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                circles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert circles == []
    # the kernels import nothing else of dazzle; facts and errors import nothing of dazzle
    for m, deps in graph.items():
        if m.startswith("dazzle.kernels"):
            assert all(d.startswith("dazzle.kernels") for d in deps), (m, deps)
    # facts imports only the kernels' plain-Python catalog; errors imports nothing of dazzle
    assert graph["dazzle.facts"] <= {"dazzle.kernels", "dazzle.kernels.catalog"} and graph["dazzle.errors"] == set()
