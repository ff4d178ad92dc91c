"""Every lesson notebook runs top to bottom in fast mode (DDPM_SCRATCH_FAST=1), in a scratch folder so that
what it saves (outputs/) does not land in the repository."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.course

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT = 300  # seconds; a cell that needs longer in fast mode is a bug in the lesson
FAST_LIMIT = 60  # seconds for a whole lesson in fast mode (contract: "well under a minute on 2 CPU cores")


def lesson_notebook(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "lessons" / f"{lesson}.ipynb", as_version=4)


def test_course_has_lessons():
    assert list((ROOT / "course" / "lessons").glob("*.py")), "no lesson sources in course/lessons/"


def test_lesson_opens_with_a_parameters_cell(lesson):
    cells = lesson_notebook(lesson).cells
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    assert code, f"lessons/{lesson}: no code"
    first = cells[code[0]]
    assert first.id == "parameters" and "parameters" in first.metadata.get("tags", []), (
        f'lessons/{lesson}: the first code cell must be # %% id="parameters" tags=["parameters"]')
    assert "DDPM_SCRATCH_FAST" in first.source and "FAST" in first.source.replace("DDPM_SCRATCH_FAST", ""), (
        f"lessons/{lesson}: the parameters cell must derive FAST from DDPM_SCRATCH_FAST")
    assert cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# "), (
        f"lessons/{lesson}: the lesson opens with its title")


def test_lesson_runs_in_fast_mode(lesson, tmp_path, monkeypatch, record_property):
    monkeypatch.setenv("DDPM_SCRATCH_FAST", "1")  # the kernel inherits this process's environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as tests/conftest.py: two busy workers on two cores; torch's spinning
    monkeypatch.setenv("MKL_NUM_THREADS", "1")  # threads would otherwise make a lesson several times slower
    nb = lesson_notebook(lesson)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    seconds = time.perf_counter() - start
    record_property("course_timing", f"lessons/{lesson}.ipynb: {seconds:.1f} s in fast mode")
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), "some code cell did not run"
    assert seconds < FAST_LIMIT, f"lessons/{lesson} takes {seconds:.0f} s in fast mode (limit {FAST_LIMIT} s)"
