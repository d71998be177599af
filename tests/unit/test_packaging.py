"""pyproject.toml declares every package that compose_net imports at run time."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT / "compose_net").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("compose_net", "__future__")}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_dependency():
    declared = {normalized(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0])
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in imported_top_level_modules():
        dists = {normalized(d) for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not in pyproject.toml dependencies: {missing}"
    assert {"pyyaml", "jsonschema", "referencing", "networkx", "pyroute2"} <= declared


def test_every_declared_dependency_is_imported():
    """And nothing more: a dependency the package does not import is a dependency too many."""
    declared = {normalized(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0])
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    imported = {normalized(d) for module in imported_top_level_modules() for d in providers.get(module, [module])}
    assert declared <= imported, f"declared but never imported: {sorted(declared - imported)}"
