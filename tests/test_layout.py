"""The package's layout: lecture modules at the top level named for what they teach, one machinery subpackage that
runs experiments (one training loop, loop.py), and the rule between them: lecture modules (and the networks) never
import the machinery, and never train (no optimizer outside the machinery)."""

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


LECTURE_MODULES = {  # the lecture's modules (DESIGN.md's layout), with the names the frame for units 5-7 gave them
    "schedules.py", "forward.py", "losses.py", "ddpm.py", "score.py", "sde.py", "likelihood.py", "score_solvers.py",
    "ddim.py", "eps_solvers.py", "distill.py", "reverse_kernel.py", "ddgan.py", "sampling.py", "reverse_steps.py",
    "integrators.py", "guidance.py", "cascade.py",
}
MACHINERY_MODULES = {"data.py", "loop.py", "train.py", "distillation.py", "gan_training.py", "metrics.py", "viz.py",
                     "demo.py", "cli.py", "files.py", "notebook.py", "classifier_training.py",
                     "applications.py"}
RENAMED = {"solvers.py": "eps_solvers.py", "sde_solvers.py": "score_solvers.py",
           "machinery/students.py": "machinery/distillation.py"}


def test_the_layout_has_lecture_modules_and_one_machinery_subpackage():
    assert (PACKAGE / "machinery" / "__init__.py").exists()
    top_level = {p.name for p in PACKAGE.glob("*.py")}
    assert LECTURE_MODULES <= top_level, LECTURE_MODULES - top_level
    assert MACHINERY_MODULES <= {p.name for p in (PACKAGE / "machinery").glob("*.py")}
    assert (PACKAGE / "nets" / "__init__.py").exists()
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    # one machinery subpackage; the networks and lecture 7's applications are the lecture's
    assert subpackages == {"machinery", "nets", "applications"}


def test_the_machinery_docstring_lists_its_modules():
    import ddpm_scratch.machinery as machinery

    modules = {p.name for p in (PACKAGE / "machinery").glob("*.py")} - {"__init__.py"}
    listed = {line.split()[0] for line in machinery.__doc__.splitlines() if line.split()[:1] and
              line.split()[0].endswith(".py")}  # the table: "    name.py   what it does"
    assert listed == modules


@pytest.mark.parametrize("old, new", sorted(RENAMED.items()))
def test_the_old_module_names_are_gone(old, new):
    assert not (PACKAGE / old).exists() and (PACKAGE / new).exists()


@pytest.mark.parametrize("path", LECTURE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lecture_modules_never_import_the_machinery(path):
    bad = [m for m in imported_modules(path) if m.startswith("ddpm_scratch.machinery")]
    assert not bad, f"{path.relative_to(PACKAGE)} imports the machinery: {bad}"


@pytest.mark.parametrize("path", LECTURE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lecture_modules_never_train(path):
    """Training loops (optimizers, backward passes) live in the machinery's one loop: the distillation stage and the
    DDGAN's training moved there; the lecture modules define the objectives."""
    tree = ast.parse(path.read_text())
    optimizers = [m for m in imported_modules(path) if m.startswith("torch.optim")]
    attributes = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
    assert not optimizers and "optim" not in attributes and "backward" not in attributes, path.name


def test_the_machinery_trains_through_the_one_loop():
    """Only loop.py builds an optimizer or calls backward; the trainer, the distillation stage, the DDGAN and the
    digits classifier call run_loop."""
    for path in sorted((PACKAGE / "machinery").glob("*.py")):
        attributes = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        if path.name != "loop.py":
            assert not {"optim", "backward", "AdamW", "Adam"} & attributes, path.name
    for name in ("train.py", "distillation.py", "gan_training.py", "metrics.py"):
        assert "ddpm_scratch.machinery.loop.run_loop" in imported_modules(PACKAGE / "machinery" / name), name


def test_the_import_check_sees_relative_imports():
    """The check itself must catch `from .machinery import x` and `from ..machinery.train import y`."""
    sample = PACKAGE / "nets" / "unet.py"
    assert "ddpm_scratch.checks" in imported_modules(sample)  # from ..checks import ...
    assert "ddpm_scratch.schedules" in imported_modules(PACKAGE / "forward.py")  # from .schedules import ...
    assert "ddpm_scratch.machinery.loop.run_loop" in imported_modules(PACKAGE / "machinery" / "train.py")
