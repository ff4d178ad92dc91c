"""The package's layout rule: lecture modules (and the networks) never import the machinery."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ddpm_scratch"
LECTURE_FILES = sorted(p for p in PACKAGE.rglob("*.py") if "machinery" not in p.relative_to(PACKAGE).parts
                       and p.name != "__main__.py")  # __main__ is the command line's entry, not a lecture module


def imported_modules(path: Path) -> list[str]:
    """Absolute names of the modules a file imports (relative imports resolved against its package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{a.name}" for a in node.names]
    return names


def test_the_layout_has_lecture_modules_and_one_machinery_subpackage():
    assert (PACKAGE / "machinery" / "__init__.py").exists()
    assert {"schedules.py", "forward.py", "losses.py", "ddpm.py", "sampling.py"} <= {p.name for p in LECTURE_FILES}


@pytest.mark.parametrize("path", LECTURE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lecture_modules_never_import_the_machinery(path):
    bad = [m for m in imported_modules(path) if m.startswith("ddpm_scratch.machinery")]
    assert not bad, f"{path.relative_to(PACKAGE)} imports the machinery: {bad}"


def test_the_import_check_sees_relative_imports():
    """The check itself must catch `from .machinery import x` and `from ..machinery.train import y`."""
    sample = PACKAGE / "nets" / "unet.py"
    assert "ddpm_scratch.checks" in imported_modules(sample)  # from ..checks import ...
    assert "ddpm_scratch.schedules" in imported_modules(PACKAGE / "forward.py")  # from .schedules import ...
