"""Grade many submissions of one problem set in one Python process, giving each the verdicts nbgrader gives it: the
whole notebook run top to bottom in a fresh namespace, a tests cell worth its points when it raises nothing.

nbgrader autogrades each submission in a kernel of its own, which costs its start-up, torch's import and nbgrader's
bookkeeping every time, and runs every cell to the end. Here one process grades them all, and runs the cells the
submissions share only once. A submission runs the source notebook's cells in order, with its own solution cells
swapped in (and, for a "visible" one, the tests cells without their hidden tests, as the student runs them), so up
to the first cell it runs differently it runs exactly the reference's cells. The process therefore runs the
reference's cells once, in one namespace; before the first cell a submission changes it forks a child, which
inherits that namespace, the modules as they stand and the verdicts so far, runs the rest of the cells as the
submission has them up to the last tests cell the caller asks about, sends its verdicts back through a pipe and
exits. The parent waits for it, then goes on with the reference's next cell, and grades the reference itself to
the end. Whatever a submission does (kill its process, loop, change a module) stays in its child; a child that
dies, or outlives a cell timeout per cell it runs, is recorded as "<harness>" for that submission alone. A
submission that changes nothing before its last tests cell takes the reference's verdicts up to that cell.

A problem set's demo cell (id "<part>_demo": a picture made with the answers, scored by nothing, defining nothing
a test reads) is skipped: it costs up to 3 s, and nbgrader, which runs it, gives the same verdicts (the agreement
test in test_pipeline.py would show a difference). tests/course/test_pipeline.py grades the wrong submissions this
way, and checks on every run that it agrees with nbgrader cell by cell on the submissions graded both ways.

    python tests/course/in_process.py JOB.json RESULT.json

JOB.json: {"notebook": source notebook, "cell_timeout": seconds, "submissions": {name: {"replace": {cell id:
source}, "until": last tests cell id or null for all, "visible": true to run the tests cells without their hidden
tests, as the student runs them}}}. RESULT.json: {name: {tests cell id: null when it passed, else "ErrorName:
message"}}, for every tests cell that ran, and "<answer CELL>": what a replaced cell itself raised, if anything
(a wrong submission is wrong in what its functions compute, not in failing to define them), or {"<harness>": why}
for a submission whose grading itself failed. The result file is rewritten after each submission, so a process that
dies leaves the verdicts of those before.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import time
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn, never shown
# One thread for torch and OpenMP (grade_in_process sets it too). fork() copies only the thread that calls it: a
# parent with a pool of worker threads would leave the child waiting on threads that do not exist in it. With one
# thread no pool is started, and the forked child is a complete copy of the parent.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


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


def source_of(cell: dict, submission: dict) -> str:
    """The cell as the submission runs it."""
    source = submission["replace"].get(cell["id"], cell["source"])
    if submission.get("visible") and cell["kind"] == "tests":
        source = visible_part(source)
    return source


def run_cell(cell: dict, source: str, namespace: dict, cell_timeout: int) -> str | None:
    """Run one cell in `namespace`, its output swallowed: None if it raised nothing, else "ErrorName: message".
    What is neither an Exception nor a SystemExit (a KeyboardInterrupt) propagates: the submission's run stops."""
    signal.alarm(cell_timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(source, f"<cell {cell['id']}>", "exec"), namespace)
        return None
    except BaseException as raised:  # a submission may raise anything, SystemExit included
        if not isinstance(raised, Exception | SystemExit):
            raise
        return f"{type(raised).__name__}: {raised}"[:500]
    finally:
        signal.alarm(0)


def stop_of(cells: list[dict], submission: dict) -> int:
    """The index of the last cell the submission runs: its "until" tests cell, else the last cell."""
    until = submission.get("until")
    return next((i for i, c in enumerate(cells) if c["kind"] == "tests" and c["id"] == until), len(cells) - 1)


def divergence(cells: list[dict], submission: dict) -> int:
    """The index of the first cell the submission runs differently from the reference (len(cells) if none)."""
    return next((i for i, c in enumerate(cells)
                 if c["id"] in submission["replace"] or source_of(c, submission) != c["source"]), len(cells))


def grade_from(cells: list[dict], start: int, submission: dict, cell_timeout: int, namespace: dict,
               verdicts: dict[str, str | None]) -> dict[str, str | None]:
    """Run the submission's cells from index `start` to its last one in `namespace`, adding to `verdicts`."""
    replace = submission["replace"]
    for cell in cells[start:stop_of(cells, submission) + 1]:
        error = run_cell(cell, source_of(cell, submission), namespace, cell_timeout)
        if cell["kind"] == "tests":
            verdicts[cell["id"]] = error
        elif cell["id"] in replace and error is not None:
            verdicts[f"<answer {cell['id']}>"] = error
    return verdicts


def grade_in_child(cells: list[dict], start: int, submission: dict, cell_timeout: int, namespace: dict,
                   verdicts: dict[str, str | None]) -> dict[str, str | None]:
    """grade_from in a forked child, which inherits the namespace and the verdicts so far; the parent's are left as
    they are. Returns the child's verdicts, or {"<harness>": why} when it died or ran past its deadline (the cell
    timeout per cell it runs, one more to spare: a cell past the timeout is interrupted by SIGALRM, in the child)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()  # nothing buffered gets written twice
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's loop
        status = 1
        try:
            os.close(read_end)
            try:
                result = grade_from(cells, start, submission, cell_timeout, namespace, verdicts)
            except BaseException:  # a KeyboardInterrupt inside the submission: recorded, the run goes on
                result = {"<harness>": traceback.format_exc(limit=3)}
            with os.fdopen(write_end, "w") as pipe:
                json.dump(result, pipe)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing of buffers the parent owns too
    os.close(write_end)
    allowed = cell_timeout * (stop_of(cells, submission) - start + 2)
    deadline = time.monotonic() + allowed
    data, hung = b"", False
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                hung = True
                break
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    if hung:
        return {"<harness>": f"the grading process hung on this submission (still running after {allowed} s, a "
                             f"cell timeout per cell it runs and one more): killed"}
    if status == 0 and data:
        return json.loads(data)
    how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
           else f"exit status {os.waitstatus_to_exitcode(status)}")
    return {"<harness>": f"the grading process died on this submission ({how})"}


def grade_all(cells: list[dict], submissions: dict[str, dict], cell_timeout: int, done) -> None:
    """Grade every submission (see the module docstring), calling done(name, verdicts) as each is graded."""
    cells = [c for c in cells if c["kind"] != "demo"]
    # Where each submission leaves the reference's run: at its first changed cell (forked there), or past its last
    # cell when it changes none of the cells it runs (it takes the reference's verdicts there).
    leaves = {name: min(divergence(cells, s), stop_of(cells, s) + 1) for name, s in submissions.items()}
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    verdicts: dict[str, str | None] = {}
    for index in range(len(cells) + 1):
        for name, submission in submissions.items():
            if leaves[name] != index:
                continue
            if index <= stop_of(cells, submission):
                done(name, grade_in_child(cells, index, submission, cell_timeout, namespace, dict(verdicts)))
            else:
                done(name, dict(verdicts))
        if index == len(cells) or all(at <= index for at in leaves.values()):
            return
        cell = cells[index]
        try:
            error = run_cell(cell, cell["source"], namespace, cell_timeout)
        except BaseException:  # a KeyboardInterrupt in the reference's own cell: so in every run that reaches it
            why = traceback.format_exc(limit=3)
            for name in submissions:
                if leaves[name] > index:
                    done(name, {"<harness>": why})
            return
        if cell["kind"] == "tests":
            verdicts[cell["id"]] = error


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

    submissions, results = job["submissions"], {}

    def done(name: str, verdicts: dict[str, str | None]) -> None:
        results[name] = verdicts
        with open(result_path + ".part", "w") as f:
            json.dump({n: results[n] for n in submissions if n in results}, f)  # in the job's order
        os.replace(result_path + ".part", result_path)

    grade_all(cells, submissions, job["cell_timeout"], done)
    plt.close("all")


if __name__ == "__main__":
    main(*sys.argv[1:3])
