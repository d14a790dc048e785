"""Data flows one way: no module imports a later stage (docs/architecture.md)."""

from __future__ import annotations

import ast

STAGE = {
    # inputs
    "settings": 0, "errors": 0, "crs": 0, "_atomic": 0, "categories": 0, "io": 0, "scenario": 0,
    "standards": 0, "demo": 0, "urban": 0, "inputs": 0,
    # model
    "network": 1, "demand": 1, "_kernels": 1,
    # analysis
    "access": 2, "evaluate": 2, "siting": 2, "compare": 2, "checks": 2,
    # outputs
    "report": 3,
    # commands
    "prepare": 4, "pipeline": 4, "plans": 4, "cli": 5,
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
