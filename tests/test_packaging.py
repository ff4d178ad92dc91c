"""The install surface: pyproject and environment.yml agree, the console script and CI are wired."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(requirement: str) -> str:
    name, rest = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + rest.replace(" ", "")


def test_environment_yml_installs_exactly_the_pyproject_dependencies():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"])
    for extra in ("course", "dev"):
        wanted |= set(project["optional-dependencies"][extra])
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1]
    listed = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    listed = {item for item in listed if not item.startswith("-e")}
    assert {_normalise(r) for r in listed} == {_normalise(r) for r in wanted}
    assert "- -e ." in text  # the package itself, editable
    python = re.search(r"python=(\d+\.\d+)", text).group(1)
    lower = re.search(r">=\s*(\d+\.\d+)", _pyproject()["project"]["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, lower.split(".")))


def test_console_script_points_at_the_cli():
    assert _pyproject()["project"]["scripts"]["ddpm-scratch"] == "ddpm_scratch.machinery.cli:main"
    out = subprocess.run([sys.executable, "-m", "ddpm_scratch", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "train" in out.stdout and "sample" in out.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\s*$", ci, flags=re.M)


def test_the_wheel_includes_every_module():
    """setuptools' package discovery (pyproject's include) finds every folder of the package that holds modules:
    a folder without __init__.py would leave its modules out of the installed package."""
    from setuptools import find_packages

    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(ROOT, include=include))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ddpm_scratch").rglob("*.py")}
    assert folders <= found, folders - found
    assert {"ddpm_scratch", "ddpm_scratch.machinery", "ddpm_scratch.nets"} <= found
