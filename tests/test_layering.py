"""The package's import graph: no cycle between modules, and every import points down the
stage order of the pipeline (README: spec → geometry → observations → training set → fit →
defect solve → errors and bound → results → plots; commands and tasks on top).

The graph is read from the source with ``ast``: every ``import`` and ``from … import``
statement, at module level or inside a function, class or ``if TYPE_CHECKING`` block.
An import names the module it loads (``from genanalysis.sweep import Outcome`` is an
edge to the package ``genanalysis.sweep``; ``from genanalysis.models import io`` to
``genanalysis.models.io``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "genanalysis"

#: the layers, lowest first; a module may import modules of its own layer or below. A
#: module is placed by the longest entry that is it or one of its parent packages.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("genanalysis", "genanalysis.exceptions", "genanalysis.constraints", "genanalysis.jsonutil",
              "genanalysis.tomlutil", "genanalysis.memory", "genanalysis.threads", "genanalysis.lattice",
              "genanalysis.bloch", "genanalysis.dislocation_cells")),
    ("spec", ("genanalysis.data", "genanalysis.trainingset.spec")),
    ("geometry", ("genanalysis.norms",)),
    ("observations", ("genanalysis.potentials", "genanalysis.observe", "genanalysis.models.calculator")),
    ("relaxation", ("genanalysis.relaxation", "genanalysis.forcesolve")),
    ("training set", ("genanalysis.trainingset",)),
    ("models", ("genanalysis.models",)),
    ("fit", ("genanalysis.fit", "genanalysis.fitting")),
    ("defect solve", ("genanalysis.defect", "genanalysis.surrogates", "genanalysis.dislocation")),
    ("errors and bound", ("genanalysis.experiment", "genanalysis.softening", "genanalysis.experiment_dislocation",
                          "genanalysis.experiment_directforce", "genanalysis.calibration",
                          "genanalysis.identifiability", "genanalysis.decomposition")),
    ("results", ("genanalysis.results", "genanalysis.sweep")),
    ("plots", ("genanalysis.plots",)),
    ("commands and tasks", ("genanalysis.tasks", "genanalysis.pipeline", "genanalysis.bench",
                            "genanalysis.commands", "genanalysis.cli", "genanalysis.__main__",
                            "genanalysis.testing")),
]

#: imports that break the order on purpose: (importer, imported) -> why
EXEMPT: dict[tuple[str, str], str] = {
    # the package's convenience API: ``genanalysis.load_model`` imports the model reader when
    # called (function level); every stage below imports the package only for
    # ``__version__`` and ``InputError``
    ("genanalysis", "genanalysis.models.io"): "genanalysis.load_model, resolved on call",
}

def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that importing ``name`` loads (``None`` for other packages)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> dict[str, int]:
    """Modules of ours that ``module`` imports -> line of the first such import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from pkg import sub`` loads pkg.sub when it is a module, else pkg
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                continue
            resolved = _resolve(target)
            if resolved and resolved != module:
                found.setdefault(resolved, node.lineno)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer(module: str) -> int | None:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def _where(importer: str, imported: str) -> str:
    path = MODULES[importer].relative_to(ROOT)
    return f"{path}:{GRAPH[importer][imported]}: {importer} imports {imported}"


def _edges():
    for a, targets in GRAPH.items():
        for b in targets:
            if (a, b) not in EXEMPT:
                yield a, b


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    succ: dict[str, list[str]] = {m: [] for m in MODULES}
    for a, b in edges:
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(MODULES)))
    for m in MODULES:
        if m not in index:
            visit(m)
    return out


def test_the_graph_is_read():
    """The walk sees module-level, function-level and relative imports."""
    assert "genanalysis.sweep.registry" in GRAPH["genanalysis.sweep.plan"]
    assert "genanalysis.models.io" in GRAPH["genanalysis"]  # inside load_model()
    assert "genanalysis.sweep.outputs" in GRAPH["genanalysis.plots"]
    assert all(_layer(m) is not None for m in ("genanalysis", "genanalysis.sweep.engine", "genanalysis.cli"))


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer(m) is None)
    assert not missing, ("modules without a layer; add them to LAYERS in tests/test_layering.py: "
                         + ", ".join(missing))


def test_no_import_cycle():
    cycles = _cycles(_edges())
    report = []
    for comp in cycles:
        inside = set(comp)
        report.append("cycle between " + ", ".join(comp) + ":\n    "
                      + "\n    ".join(_where(a, b) for a, b in _edges() if a in inside and b in inside))
    assert not cycles, "\n".join(report)


def test_imports_point_down_the_stage_order():
    bad = []
    for a, b in _edges():
        la, lb = _layer(a), _layer(b)
        if la is not None and lb is not None and lb > la:
            bad.append(f"{_where(a, b)} ({LAYERS[la][0]} -> {LAYERS[lb][0]})")
    assert not bad, "imports against the stage order:\n  " + "\n  ".join(sorted(bad))


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a made-up edge back from the sweep's registry to the
    pipeline closes a cycle through the tasks' registration."""
    edges = [*_edges(), ("genanalysis.sweep.registry", "genanalysis.tasks.kinds")]
    assert any({"genanalysis.sweep.registry", "genanalysis.tasks.kinds"} <= set(c) for c in _cycles(edges))


def test_the_training_set_relaxes_below_the_defect_problem():
    """The training set relaxes its defect cells with the solver, which sits below it; the
    defect problem (formation energies, stability) above it is not imported."""
    assert "genanalysis.relaxation" in GRAPH["genanalysis.trainingset.build"]
    assert "genanalysis.defect" not in GRAPH["genanalysis.trainingset.build"]
    assert _layer("genanalysis.relaxation") < _layer("genanalysis.trainingset") < _layer("genanalysis.defect")


def test_the_sweep_layer_imports_no_stage_at_run_time():
    """Planning a study of a plug-in kind loads no stage; naming a built-in kind loads it
    from the table in genanalysis.tasks, with its needs."""
    code = (
        "import sys\n"
        "from genanalysis.sweep import build_plan, parse_study\n"
        "import toykinds\n"
        "plan = build_plan(parse_study({'study': {'task': 'toy.probe'}, 'experiment': {'x': 1.0}}))\n"
        "stages = ('genanalysis.pipeline', 'genanalysis.experiment', 'genanalysis.fit', 'genanalysis.plots',"
        " 'genanalysis.tasks.kinds')\n"
        "assert not [m for m in stages if m in sys.modules], [m for m in stages if m in sys.modules]\n"
        "from genanalysis.sweep.registry import get_task_kind\n"
        "kind = get_task_kind('generalisation')\n"
        "assert sorted(n.kind for n in kind.needs) == ['generalisation.fit', 'generalisation.reference',"
        " 'generalisation.reference', 'generalisation.trainingset']\n"
        "assert get_task_kind('genanalysis.experiment:surrogate_task').name == 'experiment.surrogate'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
