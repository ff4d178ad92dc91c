"""in_process.py's shared runs: the reference's cells run once, and each submission is forked from the reference's
run where it first differs. Each submission must still get the verdicts of a run of its own from the top, and
whatever it does stays in its child. A tiny notebook without torch; the pipeline's grading of the problem sets
(test_pipeline.py) checks the same mechanism against nbgrader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.course

IN_PROCESS = Path(__file__).with_name("in_process.py")
SOLUTION = {"solution": True, "grade": False}
TESTS = {"solution": False, "grade": True, "points": 1}
CELLS = [  # (id, nbgrader metadata, source)
    ("setup", None, "import json\n\nshared = []\nprint('the setup prints')"),
    ("answer", SOLUTION, "def f(x):\n    return 2 * x"),
    ("answer_tests", TESTS, "shared.append('answer_tests ran')\nprint('the tests print')\nassert f(3) == 6\n"
                            "### BEGIN HIDDEN TESTS\nassert f(-1) == -2\n### END HIDDEN TESTS"),
    ("failing_tests", TESTS, "raise AssertionError('the reference fails here')"),  # in every run, the reference's too
    ("g", SOLUTION, "def g(x):\n    return x + 1"),
    ("g_demo", None, "raise RuntimeError('a demo cell runs')"),  # skipped
    ("g_tests", TESTS, "assert g(1) == 2\nassert shared == ['answer_tests ran'], shared\n"
                       "assert not hasattr(json, 'tampered'), 'a module changed by another submission'"),
]
REFERENCE = {"answer_tests": None, "failing_tests": "AssertionError: the reference fails here", "g_tests": None}
WRONG_G = "def g(x):\n    return x"
DEAF_LOOP = ("import signal\nimport time\n\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)  # deaf to the cell timeout\n"
             "while True:\n    time.sleep(0.05)")


def grade(tmp_path: Path, submissions: dict) -> tuple[dict, subprocess.CompletedProcess]:
    nb = nbformat.v4.new_notebook()
    for cell_id, meta, source in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = cell_id
        if meta:
            cell.metadata["nbgrader"] = {**meta, "grade_id": cell_id}
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    job, result = tmp_path / "job.json", tmp_path / "result.json"
    job.write_text(json.dumps({"notebook": str(tmp_path / "tiny.ipynb"), "cell_timeout": 1,
                               "submissions": submissions}))
    done = subprocess.run([sys.executable, str(IN_PROCESS), str(job), str(result)], capture_output=True, text=True,
                          timeout=120)
    return json.loads(result.read_text()), done


def test_each_submission_gets_the_verdicts_of_a_run_of_its_own(tmp_path):
    """Submissions leaving the reference's run at different cells (an answer, a later answer, the first tests cell
    for a visible run, none before the last tests cell asked about) get what a run from the top gives them: the
    reference's failing tests cell included, a module or an object one of them changes not seen by the others."""
    submissions = {
        "reference": {"replace": {}, "until": None},
        "tamper": {"replace": {"answer": "json.tampered = True\nshared.append('tamper')\n\n\ndef f(x):\n"
                                         "    return 2 * x"}, "until": None},
        "late": {"replace": {"g": WRONG_G}, "until": None},
        "stops_early": {"replace": {"g": WRONG_G}, "until": "answer_tests"},
        "visible_late": {"replace": {"g": WRONG_G}, "until": "g_tests", "visible": True},
        "visible_hidden": {"replace": {"answer": "def f(x):\n    return 6"}, "until": "answer_tests",
                           "visible": True},
        "hidden": {"replace": {"answer": "def f(x):\n    return 6"}, "until": "answer_tests"},
        "exits": {"replace": {"answer": "raise SystemExit(2)"}, "until": "answer_tests"},
        "after": {"replace": {"answer": CELLS[1][2]}, "until": None},
    }
    verdicts, done = grade(tmp_path, submissions)
    assert done.returncode == 0 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert list(verdicts) == list(submissions), verdicts  # every one, in the job's order
    assert verdicts["reference"] == REFERENCE, verdicts
    assert verdicts["tamper"]["g_tests"].startswith("AssertionError: ['tamper', 'answer_tests ran']"), verdicts
    assert {k: v for k, v in verdicts["tamper"].items() if k != "g_tests"} == {
        "answer_tests": None, "failing_tests": REFERENCE["failing_tests"]}, verdicts
    assert verdicts["late"] == {**REFERENCE, "g_tests": "AssertionError: "}, verdicts
    assert verdicts["stops_early"] == {"answer_tests": None}, verdicts
    assert verdicts["visible_late"] == {**REFERENCE, "g_tests": "AssertionError: "}, verdicts
    assert verdicts["visible_hidden"] == {"answer_tests": None}, verdicts  # the hidden test is not in its run
    assert verdicts["hidden"] == {"answer_tests": "AssertionError: "}, verdicts
    assert verdicts["exits"] == {"<answer answer>": "SystemExit: 2",
                                 "answer_tests": "NameError: name 'f' is not defined"}, verdicts
    assert verdicts["after"] == REFERENCE, verdicts


def test_a_submission_that_ends_its_process_costs_its_own_verdicts_only(tmp_path):
    """A child that exits, is killed, raises KeyboardInterrupt or loops deaf to the cell timeout's alarm (killed by
    the parent after a cell timeout per cell it runs, one more to spare) is that submission's "<harness>" entry; the
    reference and the submission graded after them get their verdicts, all in one process."""
    until = {"until": "answer_tests"}
    submissions = {
        "reference": {"replace": {}, "until": None},
        "exit": {"replace": {"answer": "import os\nos._exit(3)"}, **until},
        "killed": {"replace": {"answer": "import os\nimport signal\nos.kill(os.getpid(), signal.SIGKILL)"}, **until},
        "interrupt": {"replace": {"answer": "raise KeyboardInterrupt('pressed')"}, **until},
        "deaf": {"replace": {"answer": DEAF_LOOP}, **until},
        "after": {"replace": {"g": WRONG_G}, "until": None},
    }
    verdicts, done = grade(tmp_path, submissions)
    assert done.returncode == 0 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert verdicts["reference"] == REFERENCE, verdicts
    assert verdicts["exit"] == {"<harness>": "the grading process died on this submission (exit status 3)"}, verdicts
    assert verdicts["killed"] == {"<harness>": "the grading process died on this submission (killed by signal 9)"}, (
        verdicts)
    assert list(verdicts["interrupt"]) == ["<harness>"], verdicts
    assert "KeyboardInterrupt: pressed" in verdicts["interrupt"]["<harness>"], verdicts
    assert verdicts["deaf"] == {"<harness>": "the grading process hung on this submission (still running after 3 s, "
                                             "a cell timeout per cell it runs and one more): killed"}, verdicts
    assert verdicts["after"] == {**REFERENCE, "g_tests": "AssertionError: "}, verdicts
