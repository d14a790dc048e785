"""Data flows one way: no module imports a later stage (docs/architecture.md)."""

from __future__ import annotations

import ast

STAGE = {
    # inputs
    "settings": 0, "errors": 0, "crs": 0, "_atomic": 0, "categories": 0, "io": 0, "scenario": 0,
    "standards": 0, "demo": 0, "demo_region": 0, "urban": 0, "inputs": 0,
    # model
    "network": 1, "demand": 1, "_kernels": 1,
    # analysis
    "access": 2, "incremental": 2, "evaluate": 2, "model": 2, "siting": 2, "compare": 2, "checks": 2,
    # outputs
    "report": 3,
    # commands
    "prepare": 4, "pipeline": 4, "plans": 4, "batch": 4, "serve": 4, "cli": 5,
}


def _imported(tree: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "coverage":
            parts = n.module.split(".")
            out |= {parts[1]} if len(parts) > 1 else {a.name for a in n.names}
        elif isinstance(n, ast.Import):
            out |= {a.name.split(".")[1] for a in n.names if a.name.startswith("coverage.")}
    return out


def test_every_module_has_a_stage_and_imports_only_earlier_ones(repo_root):
    pkg = repo_root / "src" / "coverage"
    wrong = []
    for path in pkg.rglob("*.py"):
        top = path.relative_to(pkg).parts[0].removesuffix(".py")
        if top == "__init__" or top == "__main__":
            continue
        assert top in STAGE, f"{path}: give the new module a stage in this test and docs/architecture.md"
        for target in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            if target in STAGE and STAGE[target] > STAGE[top]:
                wrong.append(f"{path.relative_to(pkg)} imports the later stage {target}")
    assert not wrong, "\n".join(wrong)


#: Order inside the inputs stage: a module may import only from its own rank or lower.
INPUT_RANK = {
    "settings": 0, "errors": 0, "crs": 1, "_atomic": 1, "categories": 2, "io": 3, "standards": 4,
    "scenario": 5, "urban": 5, "inputs": 6, "demo": 6, "demo_region": 6,
}


def _top(path, pkg) -> str:
    return path.relative_to(pkg).parts[0].removesuffix(".py")


def test_inputs_stage_is_ordered_too(repo_root):
    pkg = repo_root / "src" / "coverage"
    wrong = []
    for path in pkg.rglob("*.py"):
        top = _top(path, pkg)
        if top not in INPUT_RANK:
            continue
        for target in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            if target in INPUT_RANK and target != top and INPUT_RANK[target] > INPUT_RANK[top]:
                wrong.append(f"{path.relative_to(pkg)} imports {target}, later in the inputs stage")
    assert not wrong, "\n".join(wrong)


def _private_uses(tree: ast.AST) -> list[str]:
    """``from coverage.x import _name`` and ``x._name`` where ``x`` is an imported coverage module."""
    modules: set[str] = set()
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "coverage":
            for a in n.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    out.append(f"from {n.module} import {a.name}")
                elif n.module == "coverage" or n.module.startswith("coverage."):
                    modules.add(a.asname or a.name)
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith("coverage."):
                    modules.add(a.asname or a.name.split(".")[-1])
    for n in ast.walk(tree):
        if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
                and n.attr.startswith("_") and not n.attr.startswith("__")):
            out.append(f"{n.value.id}.{n.attr}")
    return out


def test_no_module_uses_another_modules_private_names(repo_root):
    pkg = repo_root / "src" / "coverage"
    wrong = []
    for path in pkg.rglob("*.py"):
        top = _top(path, pkg)
        for use in _private_uses(ast.parse(path.read_text(encoding="utf-8"))):
            # a package may use its own private modules (coverage.siting._x inside siting)
            if use.startswith(f"from coverage.{top}"):
                continue
            # the compiled core is a private module of the engine, by design
            if use == "from coverage import _kernels" and top in ("access", "network", "evaluate"):
                continue
            wrong.append(f"{path.relative_to(pkg)}: {use}")
    assert not wrong, "\n".join(wrong)
