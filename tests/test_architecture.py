"""The package's layers read one way (pyproject.toml [tool.importlinter]; README "Layout").

* the import-linter ``layers`` contract holds, and it does catch an upward import (checked on a copy of the
  package with one planted);
* no import cycle anywhere in the package, function-local imports included;
* no function-local import of the package's own modules: those hid the cycles this layout removed. A
  function-local import is only for deferring a heavy third-party import (torch, scipy, pandas, ...); the
  one own-module exception is listed below with the reason, and the test checks the reason still holds.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pytest_skillbench"
TRAINING = REPO / "training"  # installed as pytest_skillbench.training
LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())"]

# (importing module, imported module) -> why the import waits for a function call
DEFERRED_OWN_IMPORTS = {
    ("pytest_skillbench.plugin", "pytest_skillbench.session"):
        "the session brings numpy and the whole run machinery; a pytest run without --student must not pay "
        "for it (tests/test_import_cost.py)",
}


def test_the_layers_contract_holds():
    res = subprocess.run(LINT_IMPORTS + ["--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


def _lint_a_copy(tmp_path, plant: dict[str, str]) -> subprocess.CompletedProcess:
    """lint-imports with the same configuration on a copy of the package and of training/ (the package under
    another name, so the installed one does not shadow it), with ``plant`` (file -> line) appended."""
    copy = tmp_path / "skillbench_copy"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.j2", "*.jsonl", "*.txt"))
    shutil.copytree(TRAINING, tmp_path / "training", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, line in plant.items():
        f = tmp_path / rel
        f.write_text(f.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    config = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(config.replace("pytest_skillbench", "skillbench_copy"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(LINT_IMPORTS + ["--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, check=False)


def test_the_contract_fails_on_an_upward_import(tmp_path):
    """Not vacuous contracts: errors.py importing the session (the bottom layer reaching the top), training/'s
    masks importing the CLI, and its corpus importing the trainer above it each break one."""
    res = _lint_a_copy(tmp_path, {"skillbench_copy/errors.py": "from . import session",
                                  "training/masks.py": "from skillbench_copy.cli import main",
                                  "training/corpus.py": "from . import train"})
    assert res.returncode != 0, res.stdout + res.stderr
    assert "0 kept, 3 broken" in res.stdout, res.stdout
    assert "skillbench_copy.errors -> skillbench_copy.session" in res.stdout
    assert "training.masks -> skillbench_copy.cli" in res.stdout
    assert "training.corpus -> training.train" in res.stdout


def _training_imports(path: Path) -> list[str]:
    """Modules of training/ a package file imports (as pytest_skillbench.training[.x])."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out += [t for t in targets if t == "pytest_skillbench.training" or t.startswith("pytest_skillbench.training.")]
    return out


def test_only_the_training_commands_import_training():
    """grimp cannot follow ``pytest_skillbench.training`` through setuptools' package-dir mapping, so the
    package's imports of it are found here: only the CLI's training commands (the top layer) use it."""
    users = {_module_name(f): _training_imports(f) for f in sorted(PACKAGE.rglob("*.py"))}
    users = {m: t for m, t in users.items() if t}
    assert set(users) == {"pytest_skillbench.cli.training"}, users


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
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
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycle():
    # module-level and function-local imports alike; training/ read from the repository as `training`
    graph = grimp.build_graph("pytest_skillbench", "training", cache_dir=None)
    assert len(graph.modules) > 50 and "training.trace" in graph.modules
    for f in sorted(PACKAGE.rglob("*.py")):  # the package's imports of training/, which grimp drops
        for target in _training_imports(f):
            graph.add_import(importer=_module_name(f), imported=target.replace("pytest_skillbench.", "", 1))
    assert "training.train" in graph.find_modules_directly_imported_by("pytest_skillbench.cli.training")
    assert _cycles(graph) == []


def _module_name(path: Path) -> str:
    if path.is_relative_to(TRAINING):
        parts = ["pytest_skillbench", "training", *path.relative_to(TRAINING).with_suffix("").parts]
    else:
        parts = ["pytest_skillbench", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _function_local_own_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, imported own module, line) for every import inside a function body."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            else:
                continue
            out += [(name, t, node.lineno) for t in targets if t.split(".")[0] == "pytest_skillbench"]
    return out


def test_no_function_local_import_of_the_package_s_own_modules():
    files = sorted(PACKAGE.rglob("*.py")) + sorted(TRAINING.rglob("*.py"))
    assert len(files) > 60
    found = [hit for f in files for hit in _function_local_own_imports(f)]
    unexpected = [f"{m}:{line} imports {t}" for m, t, line in found if (m, t) not in DEFERRED_OWN_IMPORTS]
    assert unexpected == []
    # every allowed deferral is still there (else the list is stale) ...
    assert {(m, t) for m, t, _ in found} == set(DEFERRED_OWN_IMPORTS)


def test_the_allowed_deferral_still_defers_a_heavy_import():
    """... and still keeps something heavy out: importing the session loads numpy, importing the plugin
    does not."""
    code = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
            "print('numpy' in sys.modules)")
    for module, expected in (("pytest_skillbench.plugin", "False"), ("pytest_skillbench.session", "True")):
        res = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == expected, module
