"""The committed notebooks are the build of their sources, carry no outputs, and follow the source format contract;
the build catches contract violations and reports what would change."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import build_notebooks
from tools.build_notebooks import ContractError, build_notebook, notebook_bytes
from tools.release import nbgrader_env

pytestmark = pytest.mark.course

ROOT = Path(__file__).resolve().parents[2]
ID = re.compile(r"^[a-z0-9_]+$")


def run_tool(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=root, env=nbgrader_env(root / ".jupyter"),
                          capture_output=True, text=True)


def test_built_notebooks_are_the_build_of_their_sources(course_copy):
    done = run_tool(course_copy, "tools/build_notebooks.py", "--check")
    assert done.returncode == 0, f"run `python tools/build_notebooks.py` and commit:\n{done.stdout}{done.stderr}"


def test_release_tool_finds_the_committed_release_current(course_copy):
    done = run_tool(course_copy, "tools/release.py", "--check")
    assert done.returncode == 0, f"run `python tools/release.py` and commit:\n{done.stdout}{done.stderr}"


def test_committed_notebooks_carry_no_outputs():
    paths = [*ROOT.glob("lessons/*.ipynb"), *ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("assignments/*/*.ipynb")]
    assert paths, "no committed notebooks"
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path}: cell {cell.id} has outputs"


def test_problem_set_follows_the_contract(problem_set):
    """Read back from the built source notebook, independently of the build's own checks."""
    folder = ROOT / "solutions" / problem_set
    assert sorted(p.name for p in folder.iterdir()) == [f"{problem_set}.ipynb"], (
        f"solutions/{problem_set}/ must hold the notebook only (anything else is released)")
    cells = nbformat.read(folder / f"{problem_set}.ipynb", as_version=4).cells
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids) and all(ID.match(i) for i in ids), f"{problem_set}: ids {ids}"
    kinds = []
    for cell in cells:
        meta = cell.metadata["nbgrader"]
        where = f"solutions/{problem_set}: cell {cell.id}"
        assert meta["grade_id"] == cell.id and meta["schema_version"] == 3 and meta["task"] is False, where
        flags = (meta["grade"], meta["solution"], meta["locked"])
        kind = {(False, False, True): "read-only", (False, True, False): "solution", (True, False, True): "tests",
                (True, True, False): "manual"}.get(flags)
        assert kind, f"{where}: (grade, solution, locked) = {flags} is no kind of the contract"
        assert (kind in ("tests", "manual")) == ("points" in meta), f"{where}: points only on tests/manual cells"
        if "points" in meta:
            assert meta["points"] > 0, where
        expected_type = {"solution": "code", "tests": "code", "manual": "markdown"}.get(kind, cell.cell_type)
        assert cell.cell_type == expected_type, f"{where}: a {kind} cell must be {expected_type}"
        has_solution = "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        assert has_solution == (kind in ("solution", "manual")), f"{where}: solution markers vs kind {kind}"
        has_hidden = "BEGIN HIDDEN TESTS" in cell.source or "END HIDDEN TESTS" in cell.source
        assert not has_hidden or kind == "tests", f"{where}: hidden tests outside a tests cell"
        if has_hidden:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
            assert "ddpm_scratch" not in hidden, f"{where}: hidden tests must not use ddpm_scratch for the answers"
        kinds.append(kind)
    assert "tests" in kinds, f"{problem_set}: no tests cell"
    for index, kind in enumerate(kinds):  # every answer is graded by some later tests cell
        if kind == "solution":
            assert "tests" in kinds[index + 1:], f"{problem_set}: cell {ids[index]} has no tests cell after it"


# The build itself, on small sources written here (the contract's rules, one violation at a time).
PROBLEM_SET = '''# %% [markdown] id="intro"
# # A problem set

# %% id="setup"
import math

# %% id="double" kind="solution"
def double(x):
    """x -> 2x"""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %% id="double_tests" kind="tests" points=2
assert double(1) == 2
### BEGIN HIDDEN TESTS
assert double(-3) == -6
### END HIDDEN TESTS

# %% [markdown] id="why" kind="manual" points=1
# Why?
#
# ### BEGIN SOLUTION
# Because.
# ### END SOLUTION
'''

LESSON = '''# %% [markdown]
# # A lesson

# %% id="parameters" tags=["parameters"]
import os
FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"

# %%
print(FAST)
'''


def write(tmp_path: Path, text: str, name: str = "ps9_tiny.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_build_maps_the_contract_onto_nbgrader_metadata(tmp_path):
    nb = build_notebook(write(tmp_path, PROBLEM_SET), problem_set=True)
    base = {"schema_version": 3, "task": False}
    expected = {
        "intro": {**base, "grade": False, "solution": False, "locked": True, "grade_id": "intro"},
        "setup": {**base, "grade": False, "solution": False, "locked": True, "grade_id": "setup"},
        "double": {**base, "grade": False, "solution": True, "locked": False, "grade_id": "double"},
        "double_tests": {**base, "grade": True, "solution": False, "locked": True, "grade_id": "double_tests",
                         "points": 2},
        "why": {**base, "grade": True, "solution": True, "locked": False, "grade_id": "why", "points": 1},
    }
    assert [c.id for c in nb.cells] == list(expected)
    for cell in nb.cells:
        assert cell.metadata == {"nbgrader": expected[cell.id]}, cell.id
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert nb.cells[2].source.startswith('def double(x):\n    """x -> 2x"""\n    ### BEGIN SOLUTION')
    assert nb.cells[4].cell_type == "markdown" and nb.cells[4].source.startswith("Why?")
    assert notebook_bytes(nb) == notebook_bytes(build_notebook(tmp_path / "ps9_tiny.py", problem_set=True))
    assert notebook_bytes(nb).endswith(b"}\n")


def test_lesson_ids_are_stable_and_parameters_cell_is_tagged(tmp_path):
    nb = build_notebook(write(tmp_path, LESSON, "01_tiny.py"), problem_set=False)
    assert nb.cells[1].id == "parameters" and nb.cells[1].metadata == {"tags": ["parameters"]}
    edited = build_notebook(write(tmp_path, LESSON.replace("print(FAST)", "print(not FAST)"), "01_tiny.py"), False)
    assert [c.id for c in edited.cells[:2]] == [c.id for c in nb.cells[:2]]  # editing one cell keeps the others
    assert edited.cells[2].id != nb.cells[2].id
    assert len({c.id for c in nb.cells}) == len(nb.cells)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('# %% id="setup"', "# %%", "needs an id"),
    ('id="setup"', 'id="intro"', 'duplicate id "intro"'),
    ('id="setup"', 'id="Setup-1"', "must match"),
    ('kind="solution"', 'kind="answer"', "unknown kind 'answer'"),
    ('kind="tests" points=2', 'kind="tests"', "points must be a positive number"),
    ("points=2", "points=0", "points must be a positive number"),
    ('id="setup"', 'id="setup" points=1', "only tests and manual cells carry points"),
    ("    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "    return 2 * x", "needs its answer between"),
    ("import math", "import math\n### BEGIN HIDDEN TESTS\nx = 1\n### END HIDDEN TESTS", "hidden-test markers outside"),
    ("import math", "import math\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "solution markers outside"),
    ("    ### END SOLUTION\n", "\n", "without '### END SOLUTION'"),
    ("    ### BEGIN SOLUTION", "    # BEGIN SOLUTION", "must read exactly"),
    ('# %% id="double" kind="solution"', '# %% [markdown] id="double" kind="solution"', "must be a code cell"),
])
def test_build_names_file_and_cell_of_a_contract_violation(tmp_path, old, new, message):
    assert old in PROBLEM_SET
    path = write(tmp_path, PROBLEM_SET.replace(old, new, 1))
    with pytest.raises(ContractError, match=re.escape(message)) as error:
        build_notebook(path, problem_set=True)
    assert str(path) in str(error.value) and re.search(r"cell \d+", str(error.value))


def test_lesson_without_parameters_cell_is_rejected(tmp_path):
    path = write(tmp_path, LESSON.replace(' tags=["parameters"]', ""), "01_tiny.py")
    with pytest.raises(ContractError, match="parameters cell"):
        build_notebook(path, problem_set=False)


def test_check_lists_what_would_change_and_strays(tmp_path, capsys):
    (tmp_path / "course" / "problem_sets").mkdir(parents=True)
    (tmp_path / "course" / "lessons").mkdir(parents=True)
    write(tmp_path / "course" / "problem_sets", PROBLEM_SET)
    write(tmp_path / "course" / "lessons", LESSON, "01_tiny.py")
    built = [tmp_path / "solutions" / "ps9_tiny" / "ps9_tiny.ipynb", tmp_path / "lessons" / "01_tiny.ipynb"]

    assert build_notebooks.main(["--check", "--root", str(tmp_path)]) == 1
    assert not any(p.exists() for p in built)
    assert build_notebooks.main(["--root", str(tmp_path)]) == 0 and all(p.exists() for p in built)
    first = [p.read_bytes() for p in built]
    assert build_notebooks.main(["--check", "--root", str(tmp_path)]) == 0
    assert build_notebooks.main(["--root", str(tmp_path)]) == 0 and [p.read_bytes() for p in built] == first

    write(tmp_path / "course" / "problem_sets", PROBLEM_SET.replace("return 2 * x", "return x + x"))
    capsys.readouterr()
    assert build_notebooks.main(["--check", "--root", str(tmp_path)]) == 1
    assert "solutions/ps9_tiny/ps9_tiny.ipynb" in capsys.readouterr().out
    assert [p.read_bytes() for p in built] == first  # --check wrote nothing

    build_notebooks.main(["--root", str(tmp_path)])
    (tmp_path / "solutions" / "ps9_tiny" / "data.npz").write_bytes(b"leak")
    (tmp_path / "lessons" / "99_orphan.ipynb").write_bytes(first[1])
    capsys.readouterr()
    assert build_notebooks.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "solutions/ps9_tiny/data.npz" in err and "lessons/99_orphan.ipynb" in err
