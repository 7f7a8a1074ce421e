"""The layout's import rules hold: read from the sources, so they stay true.

``common/`` holds what both sides need and imports nothing of ``client/``,
``server/`` or ``simulations/``; the coordinator (``server/``) imports
nothing of the hospital side (``client/``) nor the simulations.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "common": ("hospfed.client", "hospfed.server", "hospfed.simulations"),
    "server": ("hospfed.client", "hospfed.simulations"),
    "client": ("hospfed.server", "hospfed.simulations"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):  # every import, also inside functions
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "relative import"))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_it_must_not(package):
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if module == "relative import"
        or any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert offending == []


def test_the_rule_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from hospfed.client.vault import load_key\n")
    assert imported_modules(bad) == [(2, "hospfed.client.vault")]


def test_no_module_is_much_over_500_lines():
    long = [
        f"{path.relative_to(ROOT)} ({n} lines)"
        for package in ("common", "client", "server", "simulations")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 550
    ]
    assert long == []
