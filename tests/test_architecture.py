"""The architecture stays as docs/architecture.md draws it: import-linter contracts, no private
names across modules, nothing heavy on import, small functions and a small engine; the CLI's flags
come from the config. (README and docs against the code: tests/test_docs.py.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import parser_flags

PACKAGE = Path(__file__).resolve().parent.parent / "logreg"


def test_import_contracts_hold(repo_root, monkeypatch):
    # Layers (cli > tune | bench > report > tracking > core), mlflow only in tracking, optuna only
    # in tune, config a leaf: [tool.importlinter] in pyproject.toml.
    from importlinter.cli import lint_imports

    monkeypatch.chdir(repo_root)
    assert lint_imports(no_cache=True) == 0


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _private_imports(module: str, tree: ast.AST) -> list[str]:
    """`from logreg.x import _name` and `alias._name` on an imported logreg module, from another module."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("logreg"):
            for a in node.names:
                dunder = a.name.startswith("__") and a.name.endswith("__")  # __version__ is public
                if a.name.startswith("_") and not dunder and node.module != module:
                    found.append(f"from {node.module} import {a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("logreg"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    bad = {}
    for module, path in _modules():
        found = _private_imports(module, ast.parse(path.read_text()))
        if found:
            bad[module] = found
    assert bad == {}


def test_the_private_name_check_can_fail():
    tree = ast.parse(
        "from logreg.tune.sweep import _open_tracker\nfrom logreg.tune import study as st\nst._x"
    )
    assert _private_imports("logreg.cli.sweep", tree) == [
        "from logreg.tune.sweep import _open_tracker",
        "st._x",
    ]


@pytest.mark.slow
def test_nothing_heavy_runs_on_import_and_train_needs_no_tracker(tmp_path):
    # Importing every module (the CLI included) starts nothing and imports neither mlflow nor
    # optuna; a numpy training run does not need them either.
    # torch comes in with the torch implementations' own modules, and only with them; sklearn
    # with logreg.sklearn (its estimators subclass scikit-learn's bases), tested below.
    code = (
        "import importlib, pkgutil, sys, logreg, logreg.cli\n"
        "cli_torch = ['torch'] if 'torch' in sys.modules else []\n"
        "for m in pkgutil.walk_packages(logreg.__path__, 'logreg.'):\n"
        "    if m.name != 'logreg.sklearn':\n"
        "        importlib.import_module(m.name)\n"
        "heavy = cli_torch + [m for m in ('mlflow', 'optuna', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "from logreg import TrainConfig, train\n"
        "train(TrainConfig(dataset='blobs', epochs=2))\n"
        "trackers = [m for m in ('mlflow', 'optuna') if m in sys.modules]\n"
        "print(heavy, trackers)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.strip() == "[] []"


@pytest.mark.slow
def test_the_sklearn_module_imports_sklearn_but_neither_torch_nor_a_tracker(tmp_path):
    code = (
        "import sys, logreg.sklearn\n"
        "print([m for m in ('sklearn', 'torch', 'mlflow', 'optuna', 'matplotlib') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.strip() == "['sklearn']"


def test_train_flags_are_generated_from_every_config_field():
    import dataclasses

    from logreg import TrainConfig
    from logreg.cli.train import field_docs

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    expected = {"--" + name.replace("_", "-") for name in fields}
    expected |= {
        "--no-nesterov",
        "--no-standardize",
        "--no-compile",
        "--save-model",
        "--plot",
        "--quiet",
        "--no-optimum",
        "--json",
    }
    assert parser_flags("train") == expected
    assert set(field_docs()) == fields  # every field has the docstring that becomes its help


def test_worker_takes_the_sweep_flags_that_mean_something_to_it():
    assert parser_flags("sweep") - parser_flags("worker") == {"--workers", "--results-dir"}


def test_no_function_is_longer_than_a_screen():
    # About 60 lines at most (STYLE.md): a function that needs more does more than one thing.
    long = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_the_engine_stays_small():
    # tune/ and tracking/ together: 3,668 lines before the one-write engine, 2,591 after it (issue
    # 19); the user's path (issue 20) added the datasets, champion models and the UI's query.
    lines = sum(
        len(p.read_text().splitlines()) for d in ("tune", "tracking") for p in (PACKAGE / d).glob("*.py")
    )
    assert lines <= 2900, f"logreg/tune + logreg/tracking: {lines} lines"


def test_no_import_cycle_in_tune_or_tracking():
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        if module.split(".")[1:2] not in (["tune"], ["tracking"]) or module.endswith(("tune", "tracking")):
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(module.rsplit(".", 1)[0])
            ):
                imported.add(node.module)
        graph[module] = imported

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [m for m in graph if reaches(m, m, {m})] == []
