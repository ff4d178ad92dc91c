"""How long the course takes to run and to grade, with the machine's load: the figures the course tests report
(terminal summary "course grading times") but do not assert, measured on their own.

    python -m benchmarks.course_times [--repeats 1] [--only lessons|grading]

1. Each lesson lessons/<lesson>.ipynb run top to bottom in fast mode (DDPM_SCRATCH_FAST=1, one torch thread, as
   tests/course/test_lessons.py runs it), in a scratch folder: its wall time and its slowest cell.
2. Each problem set graded as an instructor grades one submission: `nbgrader generate_assignment` in a scratch
   workspace (this repository's nbgrader_config.py and solutions/<ps>/), then `nbgrader autograde` of the reference
   solution alone: the command's wall time (nbgrader's start-up included) and the slowest cell, beside the cell
   timeout of nbgrader_config.py (a hang guard: the slowest cell should stay far below it).

Every figure is the median over --repeats runs (min-max beside it). The load average is printed before and after:
the figures scale with it (two cores loaded twice over, load 4, made lessons 03/04 73 s and 71 s in fast mode).
Run it from the repository root with the venv's bin on PATH (nbgrader runs `alembic` from PATH).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from benchmarks.common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools/ is a folder of scripts in the repository
from tools.release import generate, nbgrader, nbgrader_env, problem_sets, slowest_cell_seconds  # noqa: E402

SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


def load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def run_lesson(lesson: Path) -> tuple[float, float]:
    """(wall seconds, slowest cell seconds) of the lesson in fast mode, in a scratch folder."""
    nb = nbformat.read(lesson, as_version=4)
    with tempfile.TemporaryDirectory(prefix="course_times_") as tmp:
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        return time.perf_counter() - start, slowest_cell_seconds(nb)


def reference_submission(name: str, workspace: Path) -> None:
    """grading/submitted/reference/<ps>/<ps>.ipynb: the release with each solution cell's reference answer."""
    source = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: "\n".join(
        line for line in c.source.split("\n") if not any(m in line for m in SOLUTION_MARKERS))
        for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(workspace / "assignments" / name / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    folder = workspace / "grading" / "submitted" / "reference" / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def grade_reference(name: str) -> tuple[float, float]:
    """(wall seconds of `nbgrader autograde`, slowest cell seconds) for the reference solution alone."""
    with tempfile.TemporaryDirectory(prefix="course_times_") as tmp:
        workspace = Path(tmp)
        generate(ROOT, name, workspace)
        reference_submission(name, workspace)
        start = time.perf_counter()
        done = nbgrader(["autograde", name], cwd=workspace, env=nbgrader_env(workspace / ".jupyter"), guard=600)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader autograde {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        graded = workspace / "grading" / "autograded" / "reference" / name / f"{name}.ipynb"
        return wall, slowest_cell_seconds(nbformat.read(graded, as_version=4))


def cell_timeout() -> int:
    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as tmp:  # the config makes its grading/ folder beside itself
        (Path(tmp) / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text())
        return int(PyFileConfigLoader("nbgrader_config.py", path=tmp).load_config().Execute.timeout)


def summary(runs: list[tuple[float, float]]) -> str:
    walls, cells = [r[0] for r in runs], [r[1] for r in runs]
    spread = f" ({min(walls):.1f}-{max(walls):.1f})" if len(runs) > 1 else ""
    return f"| {statistics.median(walls):.1f}{spread} | {statistics.median(cells):.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=["lessons", "grading"], default=None)
    args = parser.parse_args()
    os.environ.update(DDPM_SCRATCH_FAST="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # the kernels inherit them
    print(f"machine: {machine()}; {os.cpu_count()} cores; load average (1/5/15 min) at the start {load()}")
    print(f"median of {args.repeats} run(s), seconds\n")
    if args.only != "grading":
        print("| lesson (fast mode) | wall | slowest cell |\n|---|---:|---:|")
        for lesson in sorted((ROOT / "lessons").glob("*.ipynb")):
            print(f"| {lesson.stem} " + summary([run_lesson(lesson) for _ in range(args.repeats)]), flush=True)
        print()
    if args.only != "lessons":
        print(f"| problem set: one submission autograded | wall | slowest cell (timeout {cell_timeout()} s) |\n"
              "|---|---:|---:|")
        for name in problem_sets(ROOT):
            print(f"| {name} " + summary([grade_reference(name) for _ in range(args.repeats)]), flush=True)
        print()
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()
