"""The nbgrader pipeline, per problem set, in a temporary copy of the course:
release = committed release, nothing secret in it, and autograding scores what it should.

One grading workspace per problem set, built once (session fixture): `nbgrader generate_assignment --force`
(which also fills the gradebook that autograde restores the hidden tests from), then `nbgrader autograde` of the
reference submission alone (timed: the issue's "one submission under 60 s") and of every other submission in one
call: the untouched release, each wrong submission of tests/course/mistakes/<ps>.py, one that loops forever and
one that raises.
"""

from __future__ import annotations

import ast
import copy
import math
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from tools.release import differences, nbgrader, nbgrader_env  # importable: tests/course/conftest.py puts ROOT first

pytestmark = pytest.mark.course

ROOT = Path(__file__).resolve().parents[2]
MIN_TIMEOUT = 10  # seconds per cell while grading all but the reference: at least this, 3x its slowest cell
# A cell that never returns; it sleeps, so that waiting for the timeout burns no CPU.
LOOP = "import time\n\nwhile True:\n    time.sleep(0.1)"
ONE_SUBMISSION_LIMIT = 60  # seconds, from the issue: one submission autograded in under a minute on 2 cores
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
STUBS = ("# YOUR CODE HERE", "raise NotImplementedError()", "YOUR ANSWER HERE")
LOG_FORMAT = ["--Application.log_format=%(asctime)s.%(msecs)03d [%(name)s|%(levelname)s] %(message)s",
              "--Application.log_datefmt=%H:%M:%S"]
STUDENT_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) .*Creating/updating student with ID '([^']+)'")
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ")


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


@dataclass
class Graded:
    """One problem set graded in its own workspace."""

    name: str
    root: Path
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode
    scores: dict[str, dict[str, tuple[float | None, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    one_submission_seconds: float = 0.0
    timeout: int = 0
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
        path = self.root / "grading" / "autograded" / student / self.name / f"{self.name}.ipynb"
        return nbformat.read(path, as_version=4)

    def describe(self, student: str) -> str:
        return f"{self.name}/{student}: scores {self.scores.get(student)}\n--- nbgrader log ---\n" + "\n".join(
            log for log in self.logs.values())[-6000:]


def submit(graded: Graded, student: str, replace: dict[str, str]) -> None:
    """Write grading/submitted/<student>/<ps>/<ps>.ipynb: the release with the cells in `replace` swapped in."""
    nb = copy.deepcopy(graded.release)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replace:
            cell.source = replace[grade_id]
    folder = graded.root / "grading" / "submitted" / student / graded.name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{graded.name}.ipynb")


def autograde(graded: Graded, label: str, *options: str) -> float:
    """`nbgrader autograde <ps>` over every submission not yet graded; return its wall time."""
    env = nbgrader_env(graded.root / ".jupyter")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one torch thread per kernel, as in tests/conftest.py
    start = time.perf_counter()
    done = nbgrader(["autograde", graded.name, *LOG_FORMAT, *options], cwd=graded.root, env=env)
    wall = time.perf_counter() - start
    graded.logs[label] = done.stdout + done.stderr
    assert done.returncode == 0, f"nbgrader autograde ({label}) failed:\n{graded.logs[label][-6000:]}"
    graded.seconds.update(per_student_seconds(graded.logs[label]))
    return wall


def slowest_cell_seconds(nb: nbformat.NotebookNode) -> float:
    """The longest cell execution of an executed notebook (nbclient records the timestamps in the metadata)."""
    def seconds(cell) -> float:
        timing = cell.metadata.get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if not (start and end):
            return 0.0
        parse = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end)]
        return (parse[1] - parse[0]).total_seconds()

    return max((seconds(c) for c in nb.cells if c.cell_type == "code"), default=0.0)


def prepare(name: str, root: Path, mistakes: dict) -> Graded:
    """Release and gradebook in the workspace, the reference submission graded alone (timed), the rest submitted."""
    done = nbgrader(["generate_assignment", name, "--force"], cwd=root, env=nbgrader_env(root / ".jupyter"))
    assert done.returncode == 0, f"nbgrader generate_assignment {name} failed:\n{done.stdout}\n{done.stderr}"
    graded = Graded(name=name, root=root,
                    source=nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4),
                    release=nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4))
    reference = {c.id: reference_answer(c) for c in graded.source.cells if kind(c) in ("solution", "manual")}
    target = graded.broken_target

    submit(graded, "reference", reference)
    graded.one_submission_seconds = autograde(graded, "reference")
    # The timeout for the other submissions: long enough for every cell of a correct answer, short for the loop.
    graded.timeout = max(MIN_TIMEOUT, math.ceil(3 * slowest_cell_seconds(graded.autograded("reference"))))

    submit(graded, "release", {})
    submit(graded, "loop", {**reference, target: LOOP})
    submit(graded, "error", {**reference, target: raising_answer(reference[target])})
    for mistake, spec in mistakes.items():
        submit(graded, f"mistake_{mistake}", {**reference, **spec["replace"]})
    return graded


def finish(graded: Graded) -> Graded:
    """Every other submission in one `nbgrader autograde` call; then the scores, read from the gradebook."""
    autograde(graded, "others", f"--Execute.timeout={graded.timeout}")
    with Gradebook("sqlite:///" + str(graded.root / "grading" / "gradebook.db")) as gradebook:
        for student in gradebook.students:
            notebook = gradebook.find_submission_notebook(graded.name, graded.name, student.id)
            graded.scores[student.id] = {g.name: (g.auto_score, g.max_score) for g in notebook.grades}
    return graded


@pytest.fixture(scope="session")
def grading(request, new_course_copy, mistakes_of):
    """grading(ps) -> Graded. On first use, every problem set the session's selected tests need is graded: the
    timed reference runs one at a time, then the problem sets' remaining submissions concurrently (2 cores)."""
    results: dict[str, Graded | BaseException] = {}

    def run(step, *args):
        try:
            return step(*args)
        except BaseException as error:  # kept, and raised in the tests of that problem set only
            return error

    def get(name: str) -> Graded:
        if not results:
            wanted = sorted({item.callspec.params["problem_set"] for item in request.session.items
                             if "problem_set" in getattr(getattr(item, "callspec", None), "params", {})} | {name})
            for ps in wanted:
                results[ps] = run(prepare, ps, new_course_copy(f"grading_{ps}"), mistakes_of(ps))
            with ThreadPoolExecutor(max_workers=2) as pool:
                done = {ps: pool.submit(run, finish, g) for ps, g in results.items() if isinstance(g, Graded)}
            results.update({ps: future.result() for ps, future in done.items()})
        if name not in results:
            results[name] = run(lambda: finish(prepare(name, new_course_copy(f"grading_{name}"), mistakes_of(name))))
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
    tests, scores = graded.cells("tests"), graded.scores["reference"]
    assert tests and set(tests) <= set(scores), f"{problem_set}: tests cells not in the gradebook: {tests}, {scores}"
    lost = {t: scores[t] for t in tests if scores[t][0] != scores[t][1]}
    assert lost == {}, f"{problem_set}: the reference solution loses points on {lost}\n{graded.describe('reference')}"


def test_untouched_release_scores_zero(grading, problem_set):
    graded = grading(problem_set)
    tests, scores = graded.cells("tests"), graded.scores["release"]
    assert tests and set(tests) <= set(scores), f"{problem_set}: tests cells not in the gradebook: {tests}, {scores}"
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
        assert set(spec) == {"replace", "must_lose"}, f"{where}: keys must be replace and must_lose"
        assert spec["replace"] and set(spec["replace"]) <= solution, f"{where}: replace names solution cells only"
        assert spec["must_lose"] and set(spec["must_lose"]) <= tests, f"{where}: must_lose names tests cells only"
        for cell_id, code in spec["replace"].items():
            ast.parse(code, filename=f"{where}: {cell_id}")  # a mistake of substance, not a syntax error


def test_mistake_loses_points(grading, problem_set, mistake, mistakes_of):
    graded = grading(problem_set)
    student = f"mistake_{mistake}"
    scores = graded.scores[student]
    must_lose = mistakes_of(problem_set)[mistake]["must_lose"]
    kept = {t: scores[t] for t in must_lose if scores[t][0] >= scores[t][1]}
    assert kept == {}, f"{problem_set}: '{mistake}' keeps full marks on {kept}\n{graded.describe(student)}"


@pytest.mark.parametrize("broken", ["loop", "error"])
def test_broken_submission_is_graded_and_contained(grading, problem_set, broken):
    """A solution cell that never returns (interrupted at the cell timeout) or that raises costs the tests of that
    cell, not the run: the tests before it keep full marks."""
    graded = grading(problem_set)
    scores, target = graded.scores[broken], graded.broken_target
    order = [c.id for c in graded.source.cells]
    tests = graded.cells("tests")
    before = [t for t in tests if order.index(t) < order.index(target)]
    affected = next(t for t in tests if order.index(t) > order.index(target))
    assert set(tests) <= set(scores), f"{problem_set}/{broken}: not every tests cell was graded: {scores}"
    assert scores[affected][0] == 0, f"{problem_set}/{broken}: {affected} scored\n{graded.describe(broken)}"
    lost = {t: scores[t] for t in before if scores[t][0] != scores[t][1]}
    assert lost == {}, f"{problem_set}/{broken}: earlier cells lost points {lost}\n{graded.describe(broken)}"

    cells = {c.id: c for c in graded.autograded(broken).cells}
    where = target if broken == "loop" else affected
    errors = [o.get("ename") for o in cells[where].get("outputs", []) if o.get("output_type") == "error"]
    expected = {"loop": {"CellTimeoutError", "KeyboardInterrupt"}, "error": {"RuntimeError"}}[broken]
    assert expected & set(errors), f"{problem_set}/{broken}: cell {where} shows errors {errors}, wanted {expected}"


def test_one_submission_autogrades_in_under_a_minute(grading, problem_set, record_property):
    graded = grading(problem_set)
    others = [t for s, t in graded.seconds.items() if s not in ("reference", "loop")]
    line = (f"{problem_set}: one submission autograded in {graded.one_submission_seconds:.1f} s end to end "
            f"(nbgrader start-up included); {statistics.mean(others):.1f} s per submission on average, "
            f"max {max(others):.1f} s, over {len(others)} more in one run (the looping one "
            f"{graded.seconds['loop']:.1f} s with a {graded.timeout} s cell timeout)")
    record_property("course_timing", line)
    print(line)
    assert graded.one_submission_seconds < ONE_SUBMISSION_LIMIT, line
