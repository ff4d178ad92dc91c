"""The nbgrader pipeline, per problem set, in a temporary copy of the course:
release = committed release, nothing secret in it, and autograding scores what it should.

One grading workspace per problem set, built once (session fixture): `nbgrader generate_assignment --force`
(which also fills the gradebook that autograde restores the hidden tests from), then `nbgrader autograde` of the
reference submission alone (its time is reported), then every other submission in one call: the untouched
release, the first NBGRADER_COPIES wrong submissions of tests/course/mistakes/<ps>.py that copy the package
("copied_from_package_*"), one that raises, one that kills its kernel and a correct one graded after it. A
submission that loops forever is graded in a copy of the workspace at the same time (it waits for the cell timeout,
asleep).

Every wrong submission, the copied ones included, is also graded in one Python process per problem set
(tests/course/in_process.py: the reference's cells run once, and each submission, forked from that run at the
first cell it changes, runs on up to the last tests cell it must fail), which costs a fraction of a kernel per
submission. The submissions graded both ways (the reference and those copied ones, every tests cell) must get the
same verdicts from both, so the cheap grading is checked against nbgrader on every run.

Grading runs with the course's own nbgrader_config.py: the cell timeout the instructor gets is the one tested. One
student's error or timeout is that student's result, never the run's: nbgrader exits 1 when any student failed, so
the tests read each student's scores from the gradebook (nbgrader.api.Gradebook) and each student's errors from
the log, and every test checks its own student. Times are reported (terminal summary "course grading times",
record_property; benchmarks/course_times.py), never asserted: the limits here are hang guards.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config.loader import PyFileConfigLoader

from tools.release import (  # importable: tests/course/conftest.py puts ROOT first
    differences,
    nbgrader,
    nbgrader_env,
    run_guarded,
    slowest_cell_seconds,
)

pytestmark = pytest.mark.course

ROOT = Path(__file__).resolve().parents[2]
# Hang guards, in seconds: past them an nbgrader command is stuck, not slow, and is killed (the students it left
# ungraded then fail their tests, saying so). One submission autogrades alone in 4-12 s on two cores under a load
# of 4-6, 18-30 s under a load of 9 and 26-38 s under a load of 12 (two busy loops beside other work), nbgrader's
# start-up included; in a shared run up to 35 s each. Every cell is bounded by the cell timeout of
# nbgrader_config.py besides.
# A run of n submissions gets RUN_GUARD + n * (PER_SUBMISSION_GUARD + the cell timeout): each submission may spend
# one whole cell timeout (a looping cell) besides 4x its slowest measured time. One submission alone: 900 s, 24x the
# slowest measured.
RUN_GUARD = 480
PER_SUBMISSION_GUARD = 120
# A cell that never returns; it sleeps, so that waiting for the timeout burns no CPU.
LOOP = "import time\n\nwhile True:\n    time.sleep(0.1)"
# A cell that kills its kernel: nbgrader cannot finish that notebook and reports an error for that student.
CRASH = "\n\nimport os\n\nos._exit(1)  # the kernel dies here"
# A cell a student adds to experiment (the problem sets allow it): it runs at grading, and changes no score.
SCRATCH = "scratch = [n * n for n in range(10)]\nprint('my own experiment', sum(scratch))"
COPIED = "copied_from_package"  # the wrong submissions that copy the package (named in the rule)
# How many of them nbgrader grades too, per problem set (the first by name): enough for the agreement test to compare
# nbgrader's verdicts with in-process grading on every tests cell, while each costs a kernel (11-28 s on 2 cores);
# every copied one is graded in process to the end, and must lose its cells' points there.
NBGRADER_COPIES = 2
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
STUBS = ("# YOUR CODE HERE", "raise NotImplementedError()", "YOUR ANSWER HERE")
LOG_FORMAT = ["--Application.log_format=%(asctime)s.%(msecs)03d [%(name)s|%(levelname)s] %(message)s",
              "--Application.log_datefmt=%H:%M:%S"]
STUDENT_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) .*Creating/updating student with ID '([^']+)'")
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ")
# nbgrader's summary line for each submission it could not finish (a dead kernel, an unanswered interrupt, ...).
FAILED_LINE = re.compile(r"There was an error processing assignment '[^']*' for student '([^']+)'")


def kind(cell) -> str | None:
    """The contract's kind of a built cell, read back from its nbgrader metadata."""
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("solution"):
        return "manual" if meta.get("grade") else "solution"
    return "tests" if meta.get("grade") else None


def regions(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """(lines inside begin/end regions, lines outside them), marker lines dropped."""
    inside, outside, open_ = [], [], False
    for line in source.split("\n"):
        if begin in line:
            open_ = True
        elif end in line:
            open_ = False
        else:
            (inside if open_ else outside).append(line)
    return inside, outside


def reference_answer(cell) -> str:
    """The student cell a perfect student writes: the source cell with its solution marker lines removed."""
    return "\n".join(line for line in cell.source.split("\n") if not any(m in line for m in SOLUTION_MARKERS))


def raising_answer(source: str) -> str:
    """The reference answer, then every function it defines redefined to raise when called (a crashing student)."""
    names = [node.name for node in ast.parse(source).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    bug = "    raise RuntimeError('a bug in the submitted code')"
    if not names:
        return source + "\n\nraise RuntimeError('a bug in the submitted code')"
    return source + "".join(f"\n\n\ndef {name}(*args, **kwargs):\n{bug}" for name in names)


def seconds_of(match) -> float:
    hours, minutes, secs, millis = (int(g) for g in match.groups()[:4])
    return 3600 * hours + 60 * minutes + secs + millis / 1000


def per_student_seconds(log: str) -> dict[str, float]:
    """Wall time nbgrader spent on each student, from the timestamps of its log (start to the next start)."""
    starts, last = [], None
    for line in log.splitlines():
        stamp = STAMP.match(line)
        if stamp:
            last = seconds_of(stamp)
        student = STUDENT_LINE.match(line)
        if student:
            starts.append((student.group(5), seconds_of(student)))
    ends = [t for _, t in starts[1:]] + [last]
    return {name: (end - start) % 86400 for (name, start), end in zip(starts, ends, strict=True)}  # past midnight


def run_guard(submissions: int, cell_timeout: int) -> int:
    """The hang guard of an `nbgrader autograde` call over that many submissions, in seconds."""
    return RUN_GUARD + submissions * (PER_SUBMISSION_GUARD + cell_timeout)


def configured_timeout(root: Path) -> int:
    """Execute.timeout of the workspace's nbgrader_config.py: the seconds a cell may run while grading."""
    return int(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config().Execute.timeout)


def load() -> str:
    """The machine's load average (1, 5, 15 minutes), for the reported times."""
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def log_from(log: str, student: str) -> str:
    """The part of an nbgrader log from the student's first line on (the whole log if the student is not in it)."""
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if f"with ID '{student}'" in line), 0)
    return "\n".join(lines[start:])


@dataclass
class Graded:
    """One problem set graded in its own workspace (and the looping submission in a copy of it)."""

    name: str
    root: Path
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode
    timeout: int = 0
    scores: dict[str, dict[str, tuple[float | None, float]]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # students nbgrader reported an error for
    runs: dict[str, list[str]] = field(default_factory=dict)  # run label -> the students submitted to it
    returncodes: dict[str, int] = field(default_factory=dict)  # run label -> nbgrader's exit status
    run_errors: dict[str, BaseException] = field(default_factory=dict)  # run label -> what stopped the test code
    workspace: dict[str, Path] = field(default_factory=dict)  # student -> the workspace that graded them
    # in-process grading (in_process.py): student -> {tests cell id: None if it passed, else its error}
    in_process: dict[str, dict[str, str | None]] = field(default_factory=dict)
    in_process_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    one_submission_seconds: float = 0.0
    slowest_reference_cell: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)

    def cells(self, wanted: str | None) -> list[str]:
        return [c.id for c in self.source.cells if kind(c) == wanted]

    @property
    def broken_target(self) -> str:
        """The solution cell the broken submissions break: the last one followed by a tests cell."""
        order = [c.id for c in self.source.cells]
        tests = self.cells("tests")
        candidates = [s for s in self.cells("solution") if any(order.index(t) > order.index(s) for t in tests)]
        assert candidates, f"{self.name}: no solution cell is followed by a tests cell"
        return candidates[-1]

    def autograded(self, student: str) -> nbformat.NotebookNode:
        root = self.workspace.get(student, self.root)
        path = root / "grading" / "autograded" / student / self.name / f"{self.name}.ipynb"
        return nbformat.read(path, as_version=4)

    def describe(self, student: str) -> str:
        label = next((run for run, students in self.runs.items() if student in students), None)
        status = "nbgrader reported an error for this student" if student in self.failed else "no nbgrader error"
        return (f"{self.name}/{student}: scores {self.scores.get(student)}; {status}; run '{label}' exited "
                f"{self.returncodes.get(label)}\n--- nbgrader log, from this student on ---\n"
                f"{log_from(self.logs.get(label, ''), student)[:6000]}")

    def graded(self, student: str) -> dict[str, tuple[float | None, float]]:
        """The student's scores, {tests cell id: (auto_score, max_score)}, with every tests cell present."""
        label = next((run for run, students in self.runs.items() if student in students), None)
        if label in self.run_errors:
            raise self.run_errors[label]
        scores, tests = self.scores.get(student), self.cells("tests")
        assert scores is not None, f"{self.name}/{student}: not in the gradebook\n{self.describe(student)}"
        assert tests and set(tests) <= set(scores), (
            f"{self.name}/{student}: tests cells not in the gradebook: {tests}\n{self.describe(student)}")
        return scores

    def graded_cleanly(self, student: str) -> dict[str, tuple[float | None, float]]:
        """As graded(), for a student whose notebook nbgrader ran to the end: the scores are the tests' verdicts."""
        assert student not in self.failed, f"{self.name}/{student}: nbgrader failed on it\n{self.describe(student)}"
        return self.graded(student)


def submit(graded: Graded, student: str, replace: dict[str, str], root: Path | None = None,
           added: dict[str, str] | None = None) -> None:
    """Write grading/submitted/<student>/<ps>/<ps>.ipynb: the release with the cells in `replace` swapped in, and
    after each cell named in `added` a new code cell of the student's own (no nbgrader metadata) holding that code."""
    nb = copy.deepcopy(graded.release)
    cells = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replace:
            cell.source = replace[grade_id]
        cells.append(cell)
        if added and grade_id in added:
            cells.append(nbformat.v4.new_code_cell(added[grade_id]))
    nb.cells = cells
    folder = (root or graded.root) / "grading" / "submitted" / student / graded.name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{graded.name}.ipynb")


@dataclass
class Run:
    """What one `nbgrader autograde` call gave: its log, exit status, and per student the scores and errors."""

    label: str
    root: Path
    students: list[str]
    wall: float
    returncode: int
    log: str
    scores: dict[str, dict[str, tuple[float | None, float]]]
    failed: set[str]
    seconds: dict[str, float]


def read_gradebook(root: Path, name: str, students: list[str]) -> dict[str, dict[str, tuple[float | None, float]]]:
    """Each student's scores from the workspace's gradebook, {student: {grade cell id: (auto_score, max_score)}};
    a student nbgrader never recorded is left out. auto_score is None where no score was recorded (a notebook
    nbgrader could not finish)."""
    scores = {}
    with Gradebook("sqlite:///" + str(root / "grading" / "gradebook.db"), course_id="ddpm_scratch") as gradebook:
        for student in students:
            try:
                notebook = gradebook.find_submission_notebook(name, name, student)
            except MissingEntry:
                continue
            scores[student] = {g.name: (g.auto_score, g.max_score) for g in notebook.grades}
    return scores


def autograde(graded: Graded, label: str, root: Path, students: list[str]) -> Run:
    """`nbgrader autograde <ps>` in `root` over the submitted `students` (every submission there not yet graded),
    then each student's scores from the gradebook. nbgrader's exit status is kept, not asserted: it is 1 when any
    one student failed, and each test judges its own student."""
    env = nbgrader_env(root / ".jupyter")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one torch thread per kernel, as in tests/conftest.py
    guard = run_guard(len(students), graded.timeout)
    start = time.perf_counter()
    try:
        done = nbgrader(["autograde", graded.name, *LOG_FORMAT], cwd=root, env=env, guard=guard)
        returncode, log, hung = done.returncode, done.stdout + done.stderr, False
    except subprocess.TimeoutExpired as stuck:
        returncode, hung = -9, True
        log = ((stuck.output or "") + (stuck.stderr or "") + f"\n[test] nbgrader autograde ({label}, "
               f"{len(students)} submissions) still ran after its hang guard of {guard} s ({load()}): killed")
    wall = time.perf_counter() - start
    scores = read_gradebook(root, graded.name, students)
    failed = set(FAILED_LINE.findall(log))
    if hung:  # the students the killed run left without a score of every tests cell failed with it
        tests = graded.cells("tests")
        failed |= {s for s in students if s not in scores or any(scores[s].get(t, (None,))[0] is None for t in tests)}
    return Run(label=label, root=root, students=students, wall=wall, returncode=returncode, log=log, scores=scores,
               failed=failed, seconds=per_student_seconds(log))


def record(graded: Graded, run: Run) -> Graded:
    """Merge a run's results into `graded` (in the fixture's thread: the runs themselves run concurrently)."""
    graded.runs[run.label] = run.students
    graded.returncodes[run.label] = run.returncode
    graded.logs[run.label] = run.log
    graded.scores.update(run.scores)
    graded.failed |= run.failed
    graded.seconds.update(run.seconds)
    graded.workspace.update(dict.fromkeys(run.students, run.root))
    return graded


def reference_of(graded: Graded) -> dict[str, str]:
    return {c.id: reference_answer(c) for c in graded.source.cells if kind(c) in ("solution", "manual")}


def prepare(name: str, root: Path, mistakes: dict) -> tuple[Graded, Path]:
    """Release and gradebook in the workspace, the reference submission graded alone (timed), the rest submitted;
    and a copy of the workspace holding the looping submission. Returns (graded, the copy)."""
    done = nbgrader(["generate_assignment", name, "--force"], cwd=root, env=nbgrader_env(root / ".jupyter"),
                    guard=run_guard(1, 0))
    assert done.returncode == 0, f"nbgrader generate_assignment {name} failed:\n{done.stdout}\n{done.stderr}"
    graded = Graded(name=name, root=root, timeout=configured_timeout(root),
                    source=nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4),
                    release=nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4))
    reference, target = reference_of(graded), graded.broken_target
    # The looping submission waits for the cell timeout: graded in a copy of the workspace (its own gradebook, as
    # SQLite wants one writer), at the same time as the rest.
    loop_root = root.with_name(root.name + "_loop")
    shutil.copytree(root, loop_root)
    submit(graded, "loop", {**reference, target: LOOP}, root=loop_root)

    graded.runs["loop"] = ["loop"]
    submit(graded, "reference", reference)
    graded.runs["reference"] = ["reference"]
    run = autograde(graded, "reference", root, ["reference"])
    record(graded, run)
    graded.one_submission_seconds = run.wall
    if "reference" not in run.failed:
        graded.slowest_reference_cell = slowest_cell_seconds(graded.autograded("reference"))

    first = graded.cells("solution")[0]
    submit(graded, "release", {})
    submit(graded, "error", {**reference, target: raising_answer(reference[target])})
    # Students are graded in name order: "crash" first, then "good" (the reference again) after it in the same run.
    submit(graded, "crash", {**reference, first: reference[first] + CRASH})
    # "good" also adds a scratch cell of its own after every answer, as the statements allow: grading runs it and
    # scores the answers all the same
    submit(graded, "good", reference, added=dict.fromkeys(graded.cells("solution"), SCRATCH))
    for mistake in sorted(m for m in mistakes if m.startswith(COPIED))[:NBGRADER_COPIES]:  # the others: in process
        submit(graded, f"mistake_{mistake}", {**reference, **mistakes[mistake]["replace"]})  # only (grade_in_process)
    graded.runs["others"] = sorted(p.name for p in (root / "grading" / "submitted").iterdir()
                                   if p.name != "reference")
    return graded, loop_root


def grade_in_process(graded: Graded, mistakes: dict) -> Graded:
    """Every wrong submission, and the reference, graded in one process (in_process.py): a wrong one up to the last
    tests cell it must fail; the reference and the copied ones (graded by nbgrader too) to the end."""
    order = graded.cells("tests")
    submissions = {"reference": {"replace": {}, "until": None}}
    for mistake, spec in mistakes.items():
        last = max((t for t in spec["must_lose"] if t in order), key=order.index, default=None)
        submissions[f"mistake_{mistake}"] = {"replace": spec["replace"],
                                             "until": None if mistake.startswith(COPIED) else last}
        if spec.get("visible"):  # the student's own run of the tests must already catch it
            submissions[f"visible_{mistake}"] = {"replace": spec["replace"], "until": last, "visible": True}
    folder = graded.root / "in_process"
    folder.mkdir(exist_ok=True)
    # One torch/OpenMP thread: besides sharing the cores fairly, it is what makes in_process.py's fork() safe (fork
    # copies only the calling thread; a child of a process with a thread pool would wait on threads it lacks).
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    start, left, attempt = time.perf_counter(), dict(submissions), 0
    # One process for all: a submission that kills or hangs its forked child is recorded there ("<harness>"). Should
    # the process itself die (or hang past the guard), the first submission left is recorded as failed and a new
    # process takes the rest: one student's crash is that student's result, never the run's.
    while left:
        attempt += 1
        job, result = folder / f"job{attempt}.json", folder / f"result{attempt}.json"
        job.write_text(json.dumps({"notebook": str(graded.root / "solutions" / graded.name / f"{graded.name}.ipynb"),
                                   "cell_timeout": graded.timeout, "submissions": left}))
        try:
            done = run_guarded([sys.executable, str(Path(__file__).with_name("in_process.py")), str(job), str(result)],
                               graded.root, env, run_guard(len(left), graded.timeout))
            said = f"exit status {done.returncode}: {done.stderr[-2000:]}"
        except subprocess.TimeoutExpired as stuck:
            said = f"killed by its hang guard: {(stuck.stderr or '')[-2000:]}"
        verdicts = json.loads(result.read_text()) if result.exists() else {}
        graded.in_process.update(verdicts)
        left = {name: spec for name, spec in left.items() if name not in verdicts}
        if left:
            first = next(iter(left))
            graded.in_process[first] = {"<harness>": f"the grading process died on this submission ({said})"}
            del left[first]
    graded.in_process_seconds = time.perf_counter() - start
    return graded


def others(graded: Graded) -> Run:
    """Every submission but the reference and the loop, in one `nbgrader autograde` call."""
    return autograde(graded, "others", graded.root, graded.runs["others"])


def looping(graded: Graded, loop_root: Path) -> Run:
    return autograde(graded, "loop", loop_root, ["loop"])


@pytest.fixture(scope="session")
def grading(request, new_course_copy, mistakes_of):
    """grading(ps) -> Graded. On first use, every problem set the session's selected tests need is graded: the
    timed references one at a time, then the problem sets' other submissions two at a time (2 cores), while the
    looping submissions wait out their cell timeout beside them (asleep)."""
    results: dict[str, Graded | BaseException] = {}

    def run(step, *args):
        try:
            return step(*args)
        except BaseException as error:  # kept, and raised in the tests of that problem set only
            return error

    def grade(names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as loops, ThreadPoolExecutor(max_workers=2) as pool:
            loop_jobs, prepared, in_process = {}, {}, {}
            for ps in names:
                prepared[ps] = run(lambda ps=ps: prepare(ps, new_course_copy(f"grading_{ps}"), mistakes_of(ps)))
                if isinstance(prepared[ps], tuple):
                    loop_jobs[ps] = loops.submit(run, looping, *prepared[ps])
            for ps, p in prepared.items():  # two busy jobs at a time, on two cores
                if isinstance(p, tuple):
                    in_process[ps] = pool.submit(run, grade_in_process, p[0], mistakes_of(ps))
            jobs = {ps: pool.submit(run, others, p[0]) for ps, p in prepared.items() if isinstance(p, tuple)}
            for ps, outcome in prepared.items():
                if not isinstance(outcome, tuple):
                    results[ps] = outcome
                    continue
                graded = results[ps] = outcome[0]
                done = in_process[ps].result()
                if isinstance(done, BaseException):  # raised in the tests that read the in-process verdicts
                    graded.run_errors["in_process"] = done
                for label, job in (("others", jobs[ps]), ("loop", loop_jobs[ps])):
                    done = job.result()
                    if isinstance(done, BaseException):  # raised in the tests of that run's students only
                        graded.run_errors[label] = done
                    else:
                        record(graded, done)

    def get(name: str) -> Graded:
        if not results:
            grade(sorted({item.callspec.params["problem_set"] for item in request.session.items
                          if "problem_set" in getattr(getattr(item, "callspec", None), "params", {})} | {name}))
        if name not in results:
            grade([name])
        if isinstance(results[name], BaseException):
            raise results[name]
        return results[name]

    return get


def source_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)


def test_course_has_problem_sets():
    assert list((ROOT / "course" / "problem_sets").glob("ps*.py")), "no problem set sources in course/problem_sets/"


def test_generated_release_is_the_committed_release(grading, problem_set):
    graded = grading(problem_set)
    assert differences(graded.root / "assignments" / problem_set, ROOT / "assignments" / problem_set) == [], (
        f"assignments/{problem_set}/ is not what `nbgrader generate_assignment` makes from solutions/: "
        "run `python tools/release.py` and commit")


def test_release_holds_no_solutions_and_no_hidden_tests(problem_set):
    folder = ROOT / "assignments" / problem_set
    release_text = "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file())
    release = nbformat.read(folder / f"{problem_set}.ipynb", as_version=4)
    release_lines = {line.strip() for cell in release.cells for line in cell.source.split("\n")}
    for marker in SOLUTION_MARKERS + HIDDEN_MARKERS:
        assert marker not in release_text, f"assignments/{problem_set}: '{marker}' released"

    secret, public = set(), set()
    for cell in source_notebook(problem_set).cells:
        solution, rest = regions(cell.source, *SOLUTION_MARKERS)
        hidden, rest = regions("\n".join(rest), *HIDDEN_MARKERS)
        secret.update(line.strip() for line in solution + hidden)
        public.update(line.strip() for line in rest)
    assert secret, f"solutions/{problem_set}: no solution or hidden-test region at all"
    # Lines found only inside solution or hidden-test regions; trivial ones ("return x", ")") prove nothing.
    secret_only = {line for line in secret - public if len(line) >= 12 and not line.startswith("#")}
    leaked = sorted(secret_only & release_lines)
    assert leaked == [], f"assignments/{problem_set} holds reference-solution or hidden-test lines: {leaked}"
    extra = sorted(release_lines - public - set(STUBS) - {""})
    assert extra == [], f"assignments/{problem_set} holds lines that are neither public source lines nor stubs: {extra}"


def test_reference_solution_scores_full_marks(grading, problem_set):
    graded = grading(problem_set)
    tests, scores = graded.cells("tests"), graded.graded_cleanly("reference")
    lost = {t: scores[t] for t in tests if scores[t][0] != scores[t][1]}
    assert lost == {}, f"{problem_set}: the reference solution loses points on {lost}\n{graded.describe('reference')}"


def test_untouched_release_scores_zero(grading, problem_set):
    graded = grading(problem_set)
    tests, scores = graded.cells("tests"), graded.graded_cleanly("release")
    scored = {t: scores[t] for t in tests if scores[t][0] != 0}
    assert scored == {}, f"{problem_set}: the untouched release scores on {scored}\n{graded.describe('release')}"


def test_mistakes_file_fits_the_problem_set(problem_set, mistakes_of):
    mistakes = mistakes_of(problem_set)
    assert len(mistakes) >= 4, f"tests/course/mistakes/{problem_set}.py: the contract asks for at least 4 mistakes"
    cells = source_notebook(problem_set).cells
    solution = {c.id for c in cells if kind(c) == "solution"}
    tests = {c.id for c in cells if kind(c) == "tests"}
    for mistake, spec in mistakes.items():
        where = f"tests/course/mistakes/{problem_set}.py: {mistake}"
        assert {"replace", "must_lose"} <= set(spec) <= {"replace", "must_lose", "visible"}, (
            f"{where}: keys must be replace, must_lose and optionally visible")
        assert spec.get("visible", True) is True, f"{where}: visible is True or absent"
        assert spec["replace"] and set(spec["replace"]) <= solution, f"{where}: replace names solution cells only"
        assert spec["must_lose"] and set(spec["must_lose"]) <= tests, f"{where}: must_lose names tests cells only"
        for cell_id, code in spec["replace"].items():
            ast.parse(code, filename=f"{where}: {cell_id}")  # a mistake of substance, not a syntax error


def in_process_verdicts(graded: Graded, student: str) -> dict[str, str | None]:
    """The student's in-process verdicts, {tests cell id: None if it passed, else its error}."""
    if "in_process" in graded.run_errors:
        raise graded.run_errors["in_process"]
    verdicts = graded.in_process.get(student)
    assert verdicts is not None and "<harness>" not in verdicts, f"{graded.name}/{student}: {verdicts}"
    return verdicts


def test_mistake_loses_points(grading, problem_set, mistake, mistakes_of):
    """Each wrong submission fails every tests cell it must lose (graded in process), and a copied-from-the-package
    one that nbgrader grades too (NBGRADER_COPIES per problem set) loses those cells' points in its gradebook."""
    graded = grading(problem_set)
    student = f"mistake_{mistake}"
    must_lose = mistakes_of(problem_set)[mistake]["must_lose"]
    verdicts = in_process_verdicts(graded, student)
    broken = {k: v for k, v in verdicts.items() if k.startswith("<answer")}
    assert broken == {}, f"{problem_set}: '{mistake}' fails to define its answer, which proves nothing: {broken}"
    passed = [t for t in must_lose if t not in verdicts or verdicts[t] is None]
    assert passed == [], (f"{problem_set}: '{mistake}' passes {passed}, which it must fail (graded in process; "
                          f"verdicts {verdicts})")
    if student in graded.runs["others"]:  # one of the copied ones nbgrader grades too (NBGRADER_COPIES)
        scores = graded.graded_cleanly(student)  # lost to the tests, not to an error of nbgrader's
        kept = {t: scores[t] for t in must_lose if (scores[t][0] or 0) >= scores[t][1]}
        assert kept == {}, f"{problem_set}: '{mistake}' keeps full marks on {kept}\n{graded.describe(student)}"


def test_visible_tests_catch_the_named_slips(grading, problem_set, mistakes_of):
    """A mistake marked "visible" (the usual slips, a copy of the package) fails its cells' tests already in the
    student's own run, without the hidden tests: the student learns of it before handing in, not from the grade."""
    graded = grading(problem_set)
    marked = {m: spec for m, spec in mistakes_of(problem_set).items() if spec.get("visible")}
    assert marked, f"tests/course/mistakes/{problem_set}.py: no mistake is marked visible"
    missed = {}
    for mistake, spec in marked.items():
        verdicts = in_process_verdicts(graded, f"visible_{mistake}")
        passed = [t for t in spec["must_lose"] if verdicts.get(t) is None]  # a cell that did not run: missed
        if passed:
            missed[mistake] = passed
    assert missed == {}, f"{problem_set}: the visible tests let these slips pass (mistake: tests cells): {missed}"


def test_every_graded_cell_has_a_copied_from_the_package_mistake(problem_set, mistakes_of):
    """The course's rule: for every graded cell a submission that copies the nearest package function loses it."""
    source = source_notebook(problem_set)
    tests_after = {}  # solution cell id -> the tests cell that follows it
    pending = []
    for cell in source.cells:
        if kind(cell) == "solution":
            pending.append(cell.metadata["nbgrader"]["grade_id"])
        elif kind(cell) == "tests":
            tests_after.update(dict.fromkeys(pending, cell.metadata["nbgrader"]["grade_id"]))
            pending = []
    copied = {cell: spec for name, spec in mistakes_of(problem_set).items() if name.startswith(COPIED)
              for cell in spec["replace"]}
    missing = {cell: tests for cell, tests in tests_after.items()
               if cell not in copied or tests not in copied[cell]["must_lose"]}
    assert missing == {}, (
        f"{problem_set}: no '{COPIED}_*' mistake replacing these cells and losing their tests: {missing}")


def test_in_process_grading_agrees_with_nbgrader(grading, problem_set):
    """The reference and the copied-from-the-package submissions nbgrader grades, graded both ways to the end: each
    tests cell passes in process exactly when nbgrader gives it full marks."""
    graded = grading(problem_set)
    students = ["reference"] + [s for s in graded.runs["others"] if s.startswith(f"mistake_{COPIED}")]
    assert len(students) > 1, f"{problem_set}: no copied-from-the-package submission was graded by nbgrader"
    disagree = {}
    for student in students:
        scores, verdicts = graded.graded_cleanly(student), in_process_verdicts(graded, student)
        for t in graded.cells("tests"):
            if (scores[t][0] == scores[t][1]) != (verdicts.get(t, "did not run") is None):
                disagree[f"{student}/{t}"] = (scores[t], verdicts.get(t, "did not run"))
    assert disagree == {}, f"{problem_set}: nbgrader (score, max) and in-process verdicts differ: {disagree}"


@pytest.mark.parametrize("broken", ["loop", "error"])
def test_broken_submission_is_graded_and_contained(grading, problem_set, broken):
    """A solution cell that never returns (interrupted at the course's cell timeout) or that raises costs the tests
    of that cell, not the run: nbgrader finishes the notebook, and the tests before it keep full marks."""
    graded = grading(problem_set)
    scores, target = graded.graded_cleanly(broken), graded.broken_target
    order = [c.id for c in graded.source.cells]
    tests = graded.cells("tests")
    before = [t for t in tests if order.index(t) < order.index(target)]
    affected = next(t for t in tests if order.index(t) > order.index(target))
    assert scores[affected][0] == 0, f"{problem_set}/{broken}: {affected} scored\n{graded.describe(broken)}"
    lost = {t: scores[t] for t in before if scores[t][0] != scores[t][1]}
    assert lost == {}, f"{problem_set}/{broken}: earlier cells lost points {lost}\n{graded.describe(broken)}"

    cells = {c.id: c for c in graded.autograded(broken).cells}
    where = target if broken == "loop" else affected
    errors = [o.get("ename") for o in cells[where].get("outputs", []) if o.get("output_type") == "error"]
    expected = {"loop": {"CellTimeoutError", "KeyboardInterrupt"}, "error": {"RuntimeError"}}[broken]
    assert expected & set(errors), f"{problem_set}/{broken}: cell {where} shows errors {errors}, wanted {expected}"
    if broken == "loop":  # stopped by the cell timeout (no sooner), within its run's hang guard (no later)
        assert graded.seconds["loop"] >= graded.timeout, (
            f"{problem_set}/loop: graded in {graded.seconds['loop']:.1f} s, under the {graded.timeout} s timeout")


def test_a_failing_submission_costs_its_student_only(grading, problem_set):
    """A submission that kills its kernel, autograded in one nbgrader run with the others: nbgrader reports an error
    for that student (and so exits 1) and records no score for it; every other student of the run is graded all
    the same, among them a correct submission graded right after the crash ("crash" < "good" in name order),
    which scores what the reference scores alone."""
    graded = grading(problem_set)
    tests, run = graded.cells("tests"), graded.runs["others"]
    assert "crash" in run and "good" in run, f"{problem_set}: {run}"
    assert "crash" in graded.failed, f"{problem_set}/crash: nbgrader reported no error\n{graded.describe('crash')}"
    assert graded.returncodes["others"] != 0, f"{problem_set}: nbgrader exited 0 although a student failed"
    crash = graded.graded("crash")
    assert all(not crash[t][0] for t in tests), f"{problem_set}/crash: scored {crash}\n{graded.describe('crash')}"

    good, reference = graded.graded_cleanly("good"), graded.graded_cleanly("reference")
    lost = {t: good[t] for t in tests if good[t][0] != good[t][1]}
    assert lost == {} and good == reference, (
        f"{problem_set}/good: lost {lost} beside the crash; alone the reference scored {reference}\n"
        f"{graded.describe('good')}")
    assert set(run) <= set(graded.scores), f"{problem_set}: not in the gradebook: {set(run) - set(graded.scores)}"


def test_cells_a_student_adds_run_and_change_no_score(grading, problem_set):
    """The statements let students add cells of their own to experiment. "good" (the reference with a scratch cell
    after every answer) keeps every added cell in its graded notebook, each ran and printed its result, and its
    scores are the reference's."""
    graded = grading(problem_set)
    answers = graded.cells("solution")
    nb = graded.autograded("good")
    own = [c for c in nb.cells if c.cell_type == "code" and "grade_id" not in c.metadata.get("nbgrader", {})]
    printed = ["my own experiment 285" in "".join(o.get("text", "") for o in c.get("outputs", [])) for c in own]
    assert len(own) == len(answers) and all(printed), (
        f"{problem_set}/good: {len(own)} cells of the student's own in the graded notebook for {len(answers)} added, "
        f"ran and printed: {printed}\n{graded.describe('good')}")
    assert graded.graded_cleanly("good") == graded.graded_cleanly("reference"), graded.describe("good")


def test_grading_times_are_reported(grading, problem_set, record_property):
    """The times go to the report, not into an assertion: one submission alone (nbgrader's start-up included) and
    per submission in the shared run. What this test asserts is behaviour: the reference, graded alone, was
    graded to the end by a run that exited 0, within its hang guard (a run past it is killed and fails)."""
    graded = grading(problem_set)
    graded.graded_cleanly("reference")
    assert graded.returncodes["reference"] == 0, graded.describe("reference")
    shared = [t for s, t in graded.seconds.items() if s in graded.runs["others"]]
    line = (f"{problem_set}: one submission autograded in {graded.one_submission_seconds:.1f} s end to end "
            f"(nbgrader start-up included; hang guard {run_guard(1, graded.timeout)} s), slowest reference cell "
            f"{graded.slowest_reference_cell:.1f} s (cell timeout {graded.timeout} s); "
            f"{statistics.mean(shared):.1f} s per submission on average, max {max(shared):.1f} s, over "
            f"{len(shared)} in one run; the looping one {graded.seconds.get('loop', float('nan')):.1f} s; "
            f"{len(graded.in_process)} graded in process in {graded.in_process_seconds:.1f} s; {load()}")
    record_property("course_timing", line)
    record_property("one_submission_seconds", round(graded.one_submission_seconds, 1))
    print(line)


def test_a_command_past_its_hang_guard_is_killed(tmp_path):
    """The guard every nbgrader command of these tests runs under (tools.release.run_guarded): a command still running
    after it is killed, with the processes it started, and the caller learns it with what the command printed."""
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
              "print('started', flush=True)\n"
              "time.sleep(600)\n")
    with pytest.raises(subprocess.TimeoutExpired) as stuck:
        run_guarded([sys.executable, "-c", script], tmp_path, dict(os.environ), guard=5)
    assert "started" in stuck.value.output, stuck.value.output
    child = int(pid_file.read_text())
    for _ in range(100):  # SIGKILL is immediate; the zombie is reaped by init, give it a moment
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{child}/stat").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the command's child {child} outlived the guard")


def test_in_process_grading_contains_a_crash_a_hang_and_a_broken_answer(tmp_path):
    """The cheap grading (grade_in_process) is held to nbgrader's rule: a submission that kills the process, one
    that loops (stopped at the cell timeout, here 2 s) and one whose answer cell itself raises cost their own
    verdicts only; the submissions after them are graded as if alone."""
    name = "tiny"
    nb = nbformat.v4.new_notebook()
    cells = [("setup", None, "import math"),
             ("answer", {"solution": True, "grade": False, "grade_id": "answer"}, "def f(x):\n    return 2 * x"),
             ("answer_tests", {"solution": False, "grade": True, "grade_id": "answer_tests", "points": 1},
              "assert f(3) == 6\n### BEGIN HIDDEN TESTS\nassert f(-1) == -2\n### END HIDDEN TESTS")]
    for cell_id, meta, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = cell_id
        if meta:
            cell.metadata["nbgrader"] = meta
        nb.cells.append(cell)
    (tmp_path / "solutions" / name).mkdir(parents=True)
    nbformat.write(nb, tmp_path / "solutions" / name / f"{name}.ipynb")
    graded = Graded(name=name, root=tmp_path, source=nb, release=nb, timeout=2)
    answer = "def f(x):\n    return {}"
    mistakes = {
        "a_crash": {"replace": {"answer": "import os\nos._exit(3)"}, "must_lose": ["answer_tests"]},
        "b_loop": {"replace": {"answer": "import time\nwhile True:\n    time.sleep(0.1)"},
                   "must_lose": ["answer_tests"]},
        "c_broken": {"replace": {"answer": "raise ValueError('no answer')"}, "must_lose": ["answer_tests"]},
        "d_hidden": {"replace": {"answer": answer.format("6 if x == 3 else 0")}, "must_lose": ["answer_tests"],
                     "visible": True},
        "e_wrong": {"replace": {"answer": answer.format("3 * x")}, "must_lose": ["answer_tests"], "visible": True},
    }
    verdicts = grade_in_process(graded, mistakes).in_process
    assert verdicts["reference"] == {"answer_tests": None}, verdicts
    assert "died" in verdicts["mistake_a_crash"]["<harness>"], verdicts
    assert not (tmp_path / "in_process" / "job2.json").exists(), "the crash ended the grading process, not its own"
    assert verdicts["mistake_b_loop"]["<answer answer>"].startswith("CellTimeout"), verdicts
    assert verdicts["mistake_c_broken"]["<answer answer>"].startswith("ValueError"), verdicts
    assert verdicts["mistake_d_hidden"]["answer_tests"].startswith("AssertionError"), verdicts  # the hidden test
    assert verdicts["visible_d_hidden"] == {"answer_tests": None}, verdicts  # passes the visible test alone
    assert verdicts["mistake_e_wrong"]["answer_tests"].startswith("AssertionError"), verdicts
    assert verdicts["visible_e_wrong"]["answer_tests"].startswith("AssertionError"), verdicts
