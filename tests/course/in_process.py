"""Grade many submissions of one problem set in one Python process, as nbgrader scores them: the whole notebook run
top to bottom in a fresh namespace per submission, a tests cell worth its points when it raises nothing.

nbgrader autogrades each submission in a kernel of its own, which costs its start-up, torch's import and nbgrader's
bookkeeping every time, and runs every cell to the end. Here one process runs them all: each submission gets a fresh
namespace (a new globals dict; modules already imported stay imported), its cells run in the source notebook's
order (solution cells replaced by the submission's, tests cells with their hidden tests), and the run stops after
the last tests cell the caller asks about. A problem set's demo cell (id "<part>_demo": a picture made with the
answers, scored by nothing, defining nothing a test reads) is skipped: it costs up to 3 s per submission, and
nbgrader, which runs it, gives the same verdicts (the agreement test in test_pipeline.py would show a
difference). tests/course/test_pipeline.py grades the wrong submissions this way, and
checks on every run that it agrees with nbgrader cell by cell on the submissions graded both ways.

    python tests/course/in_process.py JOB.json RESULT.json

JOB.json: {"notebook": source notebook, "cell_timeout": seconds, "submissions": {name: {"replace": {cell id:
source}, "until": last tests cell id or null for all, "visible": true to run the tests cells without their hidden
tests, as the student runs them}}}. RESULT.json: {name: {tests cell id: null when it passed, else "ErrorName:
message"}}, for every tests cell that ran, and "<answer CELL>": what a replaced cell itself raised, if anything
(a wrong submission is wrong in what its functions compute, not in failing to define them). The result file is
rewritten after each submission, so a process that dies leaves the verdicts of those before.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn, never shown


class CellTimeout(Exception):
    """A cell ran past the cell timeout (nbgrader interrupts it; its tests score 0)."""


def _alarm(signum, frame):
    raise CellTimeout("the cell ran past the cell timeout")


def visible_part(source: str) -> str:
    """A tests cell as the release shows it: the lines between the hidden-test markers dropped."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def grade_one(cells: list[dict], replace: dict[str, str], until: str | None, cell_timeout: int,
              visible: bool = False) -> dict[str, str | None]:
    """{tests cell id: None if it raised nothing, else what it raised} for one submission (see the module docstring).
    cells: the source notebook's code cells, [{"id", "kind", "source"}], in order."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    verdicts: dict[str, str | None] = {}
    for cell in cells:
        if cell["kind"] == "demo":
            continue
        source = replace.get(cell["id"], cell["source"])
        if visible and cell["kind"] == "tests":
            source = visible_part(source)
        signal.alarm(cell_timeout)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(source, f"<cell {cell['id']}>", "exec"), namespace)
            error = None
        except BaseException as raised:  # a submission may raise anything, SystemExit included
            error = f"{type(raised).__name__}: {raised}"[:500]
            if not isinstance(raised, Exception | SystemExit):
                raise
        finally:
            signal.alarm(0)
        if cell["kind"] == "tests":
            verdicts[cell["id"]] = error
            if cell["id"] == until:
                break
        elif cell["id"] in replace and error is not None:
            verdicts[f"<answer {cell['id']}>"] = error
    return verdicts


def main(job_path: str, result_path: str) -> None:
    job = json.loads(open(job_path).read())
    import nbformat  # here, so that importing the module stays light

    nb = nbformat.read(job["notebook"], as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        kind = "tests" if meta.get("grade") and not meta.get("solution") else "code"
        cell_id = meta.get("grade_id", cell.get("id"))
        if kind == "code" and not meta.get("solution") and str(cell_id).endswith("_demo"):
            kind = "demo"
        cells.append({"id": cell_id, "kind": kind, "source": cell.source})
    signal.signal(signal.SIGALRM, _alarm)
    import matplotlib.pyplot as plt

    results = {}
    for name, submission in job["submissions"].items():
        try:
            results[name] = grade_one(cells, submission["replace"], submission.get("until"), job["cell_timeout"],
                                      submission.get("visible", False))
        except BaseException:  # a KeyboardInterrupt inside a submission: recorded, the run goes on
            results[name] = {"<harness>": traceback.format_exc(limit=3)}
        plt.close("all")  # a submission's figures go with its namespace
        with open(result_path + ".part", "w") as f:
            json.dump(results, f)
        os.replace(result_path + ".part", result_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
