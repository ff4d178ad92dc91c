"""Shared pieces of the course tests: a temporary copy of the course, discovery of problem sets, lessons and
wrong submissions, and a summary of the measured grading times.

The course tests never write into the repository: they copy the course into a temporary folder and run there.
Adding a problem set (course/problem_sets/psN_x.py + tests/course/mistakes/psN_x.py) or a lesson adds its tests.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MISTAKES_DIR = Path(__file__).resolve().parent / "mistakes"
COURSE_PATHS = ("course", "lessons", "solutions", "assignments", "tools", "nbgrader_config.py")

sys.path.insert(0, str(ROOT))  # the course tools (tools/) are scripts in the repository, not part of the package


def problem_set_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "course" / "problem_sets").glob("ps*.py"))


def lesson_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "course" / "lessons").glob("*.py") if not p.name.startswith("_"))


def load_mistakes(name: str) -> dict:
    """MISTAKES of tests/course/mistakes/<name>.py ({} when the file is missing; the tests then fail on it)."""
    path = MISTAKES_DIR / f"{name}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"course_mistakes_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.MISTAKES)


def copy_course(dest: Path) -> Path:
    """Copy the course files (sources, built notebooks, release, tools, nbgrader config) into `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for name in COURSE_PATHS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def pytest_generate_tests(metafunc):
    """Tests taking `problem_set`, `lesson` or (`problem_set`, `mistake`) run once per item found on disk."""
    names = metafunc.fixturenames
    if "mistake" in names:
        pairs = [(ps, m) for ps in problem_set_names() for m in load_mistakes(ps)]
        metafunc.parametrize(("problem_set", "mistake"), pairs, ids=[f"{ps}-{m}" for ps, m in pairs])
    elif "problem_set" in names:
        metafunc.parametrize("problem_set", problem_set_names())
    if "lesson" in names:
        metafunc.parametrize("lesson", lesson_names())


@pytest.fixture(scope="session")
def course_copy(tmp_path_factory) -> Path:
    """A throwaway copy of the course, shared by the tests that only read or compare."""
    return copy_course(tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="session")
def mistakes_of():
    """mistakes_of(ps) -> MISTAKES of tests/course/mistakes/<ps>.py."""
    return load_mistakes


@pytest.fixture(scope="session")
def new_course_copy(tmp_path_factory):
    """new_course_copy(label) -> a fresh copy of the course, for tests that write into it (grading workspaces)."""
    return lambda label: copy_course(tmp_path_factory.mktemp(label))
