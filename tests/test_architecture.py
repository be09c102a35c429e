"""The shape of the code: layers, cycles, sizes, and what importing the adapters costs.

Read from the source (every import, inside functions too), so a new upward import, an import
cycle or an oversized module fails CI. The layer order is drawn in docs/architecture.rst.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "thermal_anomaly_segmenter"

#: Wings from the bottom up: a module may import its own wing and the wings before it.
#: ``base`` is the package root (settings, limits, process helpers) above ``errors``; the heat
#: loss physics is a numpy leaf that the settings carry (its conditions are options).
LAYERS = ("errors", "heat_loss", "base", "io", "models", "scenes", "inference", "outputs", "geo",
          "false_alarms", "evaluation", "datasets", "train", "predict", "report", "cli")
#: Root modules: only what every wing uses (``__main__`` runs the command line).
ROOT_MODULES = {"__init__", "__main__", "_compat", "_lazy", "_spawn_safe", "config", "errors",
                "limits", "processes"}
MAX_ROOT_MODULES = 12
MAX_MODULE_LINES = 500

#: Libraries that cost seconds and hundreds of MB: they load when a model or a plot is needed.
HEAVY = ("torch", "lightning", "transformers", "mlflow", "onnxruntime", "cv2", "matplotlib",
         "segmentation_models_pytorch", "timm", "albumentations")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PKG).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            targets = [s for s in subs if s in modules] or [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PKG):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and f"{parts[1]}" in ROOT_MODULES):
        return {"__main__": "cli", "errors": "errors"}.get(parts[-1], "base")
    return parts[1]


def test_every_wing_has_a_layer():
    assert {_wing(m) for m in _modules()} <= set(LAYERS)


def test_imports_run_one_way():
    """No module imports a wing above its own (the layer order of docs/architecture.rst)."""
    rank = {wing: i for i, wing in enumerate(LAYERS)}
    upward = sorted(f"{a} -> {b}" for a, targets in _graph().items() for b in targets
                    if rank[_wing(b)] > rank[_wing(a)])
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_root_keeps_only_what_every_wing_uses():
    root = {p.stem for p in (ROOT / PKG).glob("*.py")}
    assert root <= ROOT_MODULES and len(root) <= MAX_ROOT_MODULES


def test_no_module_is_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / PKG).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_only_the_atomic_helpers_rename_into_place():
    renamers = sorted(str(p.relative_to(ROOT)) for p in [*(ROOT / PKG).rglob("*.py"),
                                                         *(ROOT / "api").rglob("*.py")]
                      if "os.replace(" in p.read_text(encoding="utf-8")
                      or ".rename(" in p.read_text(encoding="utf-8"))
    assert renamers == [f"{PKG}/io/atomic.py"]


def test_the_heldout_generators_import_nothing_of_the_training_generator():
    """Their independence from scenes/ is the point of the held-out families."""
    for path in (ROOT / "heldout").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                         [a.name for a in node.names])
                for name in names:
                    assert not name.startswith(f"{PKG}.scenes"), (path.name, name)
                    assert "synthetic" not in name, (path.name, name)


def _imported_after(statement: str) -> set[str]:
    code = (f"import json, sys\n{statement}\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, cwd=ROOT)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("statement", [
    "import api",
    f"import {PKG}.cli.parser",
    "import cli",
    *(f"import {PKG}.{wing}" for wing in LAYERS if wing not in ("base", "errors")),
])
def test_importing_an_adapter_or_a_wing_loads_no_heavy_library(statement):
    assert not _imported_after(statement) & set(HEAVY)


def test_wings_export_their_main_names():
    from thermal_anomaly_segmenter import io, outputs, report, train

    assert io.read_frame.__module__ == f"{PKG}.io.read"
    assert outputs.write_outputs.__module__ == f"{PKG}.outputs.write"
    assert report.make_report.__module__ == f"{PKG}.report.inspector"
    assert callable(train.phase_recipes)
    with pytest.raises(AttributeError):
        outputs.no_such_name  # noqa: B018
