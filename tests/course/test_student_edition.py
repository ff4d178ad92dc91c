"""The student edition (tools/student_edition.py, `make student-edition`), built from the current tree into a
temporary folder: it holds what a student needs, nothing secret by path or by content, its archives hold exactly
its files, the leak check catches planted leaks, and in a clean copy unpacked from the archive the edition's own
set-up (`make check`) installs the package from that copy, where a lesson then runs in fast mode.

The set-up test runs the student's real installation (`make check`: a new .venv, pip installs torch, JupyterLab,
nbgrader and the package from the copy). It took 86-97 s on two cores under a load of 1.5-3.7, under the two minutes
that would have justified a shortcut (such as reusing the repository's packages), so it takes none; the lesson then
runs with the kernel of that venv, and both the runner and the kernel must import ddpm_scratch from the copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools.student_edition import (  # importable: tests/course/conftest.py puts ROOT first
    JUNK,
    SHARED_LINES,
    LeakError,
    build,
    files_of,
    leaks,
    normalise,
    secret_lines,
)

pytestmark = pytest.mark.course

ROOT = Path(__file__).resolve().parents[2]
# What a student needs (top level of the edition) and what must never be there, written out here on their own.
NEEDED = {"ddpm_scratch", "lessons", "assignments", "pyproject.toml", "environment.yml", "README.md", "Makefile",
          "docs", "nbgrader_config.py"}
FORBIDDEN = {"solutions", "problem_sets", "mistakes", "course", "tests", "tools", "grading", "gradebook.db", ".git",
             "source", "release", "submitted", "autograded", "feedback", "benchmarks"}
# What a lesson may tell a student to run with `python -m`: the package and the tools the edition installs.
RUNNABLE = {"ddpm_scratch", "pip", "venv", "nbgrader", "jupyter", "jupyterlab", "ipykernel"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "MARK SCHEME")
# Hang guards, in seconds, not speed limits: `make check` from nothing (pip installs torch, JupyterLab, nbgrader)
# took 86-97 s under a load of 1.5-3.7 and 783 s with both cores loaded six times over (load 10-15); 40 minutes is
# 3x the latter. A lesson's cell takes a few seconds in fast mode.
SETUP_TIMEOUT = 2400
LESSON_TIMEOUT = 300  # per cell


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> dict[str, Path]:
    return build(ROOT, tmp_path_factory.mktemp("edition"))


def is_junk(rel: Path) -> bool:
    return any(Path(part).match(pattern) for part in rel.parts for pattern in JUNK)


def repo_files(name: str) -> dict[Path, bytes]:
    """Files of a repository folder as the edition should copy them (local leftovers aside)."""
    base = ROOT / name
    return {p.relative_to(base): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and not is_junk(p.relative_to(base))}


def regions(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """(lines inside begin/end regions, lines outside), marker lines dropped (as tests/course/test_pipeline.py)."""
    inside, outside, open_ = [], [], False
    for line in source.split("\n"):
        if begin in line:
            open_ = True
        elif end in line:
            open_ = False
        else:
            (inside if open_ else outside).append(line)
    return inside, outside


def notebook_secrets() -> dict[str, str]:
    """Secret lines collected independently of the tool, from the built source notebooks solutions/<ps>/<ps>.ipynb
    (not from course/problem_sets/*.py): {line inside solution or hidden-test regions and nowhere outside: the type
    of its cell}."""
    secret, public = {}, set()
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            solution, rest = regions(cell.source, "BEGIN SOLUTION", "END SOLUTION")
            hidden, rest = regions("\n".join(rest), "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
            secret.update((line.strip(), cell.cell_type) for line in solution + hidden)
            public.update(line.strip() for line in rest)
    return {line: kind for line, kind in secret.items()
            if line not in public and line not in SHARED_LINES and len(line) >= 12 and re.search(r"\w", line)}


def visible_lines(path: Path) -> set[str]:
    """Stripped lines of a file as a reader sees them (notebooks: cell sources and text outputs)."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        texts = [c.source for c in nb.cells] + [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
        return {line.strip() for text in texts for line in str(text).split("\n")}
    try:
        return {line.strip() for line in path.read_text().split("\n")}
    except UnicodeDecodeError:
        return set()


# ---- contents ----------------------------------------------------------------------------------------------------

def test_edition_holds_what_a_student_needs(edition):
    folder = edition["folder"]
    top = {p.name for p in folder.iterdir()}
    assert NEEDED <= top, f"the edition lacks {sorted(NEEDED - top)}"
    for name in ("ddpm_scratch", "lessons", "assignments"):
        copied = {p.relative_to(folder / name): p.read_bytes() for p in (folder / name).rglob("*") if p.is_file()}
        assert copied == repo_files(name), f"{name}/ in the edition is not the repository's {name}/"
    assert list((folder / "lessons").glob("*.ipynb")) and list((folder / "assignments").glob("*/*.ipynb"))
    for name in ("pyproject.toml", "environment.yml", "docs/students.md"):
        assert (folder / name).read_bytes() == (ROOT / name).read_bytes(), f"{name} differs from the repository's"
    for licence in ROOT.glob("LICEN[CS]E*"):
        assert (folder / licence.name).read_bytes() == licence.read_bytes()
    readme = (folder / "README.md").read_text()
    assert "student edition" in readme and readme != (ROOT / "README.md").read_text()
    # nbgrader finds a configuration where `make validate` runs: the edition's own, not the instructors' (which maps
    # the grading folders), with the cell timeout grading uses
    config = (folder / "nbgrader_config.py").read_text()
    assert config == (ROOT / "course" / "student_edition" / "nbgrader_config.py").read_text()
    assert config != (ROOT / "nbgrader_config.py").read_text() and "CourseDirectory" not in config
    timeout = re.compile(r"^c\.Execute\.timeout = (\d+)$", re.MULTILINE)
    assert timeout.findall(config) == timeout.findall((ROOT / "nbgrader_config.py").read_text()) != [], (
        "the edition's cell timeout is not the one grading uses")


def test_lessons_only_call_what_the_edition_ships(edition):
    """A lesson that says `python -m <module>` names a module the edition has (the package) or installs;
    `python <script>.py` a script in the edition; `make <target>` a target of the edition's Makefile."""
    folder = edition["folder"]
    targets = set(re.findall(r"^([a-z][\w-]*):", (folder / "Makefile").read_text(), re.MULTILINE))
    missing = []
    for lesson in sorted((folder / "lessons").glob("*.ipynb")):
        for cell in nbformat.read(lesson, as_version=4).cells:
            text = cell.source
            missing += [f"{lesson.name}: python -m {m}" for m in re.findall(r"python -m ([\w.]+)", text)
                        if m.split(".")[0] not in RUNNABLE]
            missing += [f"{lesson.name}: python {script}" for script in re.findall(r"python ([\w/.-]+\.py)\b", text)
                        if not (folder / script).is_file()]
            missing += [f"{lesson.name}: make {t}" for t in re.findall(r"`make ([a-z][\w-]*)", text)
                        if t not in targets]
    assert missing == [], f"lessons call what the student edition does not ship: {missing}"


def test_no_secret_path_and_no_copy_of_a_secret_file(edition):
    folder = edition["folder"]
    paths = [p.relative_to(folder) for p in folder.rglob("*")]
    bad = [str(p) for p in paths if set(p.parts) & FORBIDDEN or p.suffix in (".db", ".sqlite")]
    assert bad == [], f"secret paths in the edition: {bad}"
    # and no secret file under another name: compare contents with every file of the instructors' folders
    secret_files = {p.read_bytes(): p for folder_name in ("solutions", "course/problem_sets", "tests/course/mistakes")
                    for p in (ROOT / folder_name).rglob("*") if p.is_file() and p.stat().st_size > 0}
    copies = [f"{p.relative_to(folder)} = {secret_files[p.read_bytes()].relative_to(ROOT)}"
              for p in folder.rglob("*") if p.is_file() and p.read_bytes() in secret_files]
    assert secret_files and copies == [], f"copies of secret files: {copies}"


def test_no_marker_and_no_solution_or_hidden_line_by_content(edition):
    folder = edition["folder"]
    tool_secrets = secret_lines(ROOT)
    assert tool_secrets, "no solution or hidden-test line found in course/problem_sets/: the check proves nothing"
    assert leaks(folder, tool_secrets) == []
    # The same by the test's own means: markers in the raw bytes, and the source notebooks' secret lines.
    secrets = notebook_secrets()
    assert secrets, "no solution or hidden-test line found in solutions/: the check proves nothing"
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(folder)}: {m}" for m in MARKERS if m.encode() in data]
        found += [f"{path.relative_to(folder)}: {line!r}" for line in sorted(visible_lines(path) & secrets.keys())]
    assert found == [], "the edition holds answers or hidden tests:\n" + "\n".join(found)


def planted_lines() -> tuple[str, str]:
    """(the longest code line of a solution or hidden test, the longest line of a written model answer with a
    backslash (LaTeX), or failing that the longest secret line), chosen among the lines that the test's own
    collection (built notebooks) and the tool's (jupytext sources, which may be newer) both call secret."""
    tool = secret_lines(ROOT)
    secrets = sorted(((line, kind) for line, kind in notebook_secrets().items() if normalise(line) in tool),
                     key=lambda item: (-len(item[0]), item[0]))
    assert secrets, "solutions/ and course/problem_sets/ share no secret line: run `make notebooks`"
    code = next(line for line, kind in secrets if kind == "code" and not line.startswith("#"))
    backslash = next((line for line, kind in secrets if kind == "markdown" and "\\" in line), secrets[0][0])
    return code, backslash


def test_leak_check_catches_planted_leaks(edition, tmp_path):
    copy = tmp_path / "edition"
    shutil.copytree(edition["folder"], copy)
    secrets = secret_lines(ROOT)
    assert leaks(copy, secrets) == [], "the untouched copy must be clean, or the plants below prove nothing"
    code, backslash = planted_lines()

    lesson = sorted((copy / "lessons").glob("*.ipynb"))[0]
    nb = nbformat.read(lesson, as_version=4)
    respaced = code.replace(" ", "  ").replace("(", "( ") + "  # my own comment"  # re-spaced and re-commented
    nb.cells.append(nbformat.v4.new_code_cell("x = 1\n        " + respaced + "   \n"))
    nbformat.write(nb, lesson)
    other_lesson = sorted((copy / "lessons").glob("*.ipynb"))[-1]
    nb = nbformat.read(other_lesson, as_version=4)
    cell = nbformat.v4.new_code_cell("raise ValueError")
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="",
                                           traceback=["Traceback (most recent call last)", "    " + code])]
    nb.cells.append(cell)
    nbformat.write(nb, other_lesson)
    assignment = sorted((copy / "assignments").glob("*/*.ipynb"))[0]
    nb = nbformat.read(assignment, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(backslash))  # JSON-escaped on disk: \\ for every \
    nbformat.write(nb, assignment)
    module = copy / "ddpm_scratch" / "checks.py"
    module.write_text(module.read_text() + f"\n# {'nothing'}\n    {code}\n")
    (copy / "docs" / "students.md").write_text((copy / "docs" / "students.md").read_text() + "\n### END HIDDEN TESTS\n")
    (copy / "README.md").write_text((copy / "README.md").read_text() + "\n=== BEGIN MARK SCHEME ===\n")
    ps = sorted((ROOT / "solutions").glob("*/*.ipynb"))[0]
    (copy / "solutions" / ps.parent.name).mkdir(parents=True)
    shutil.copy2(ps, copy / "solutions" / ps.parent.name / "renamed.txt")
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    shutil.copy2(ROOT / "nbgrader_config.py", copy / "nbgrader_config.py")  # the instructors' configuration

    found = leaks(copy, secrets)
    expected = [
        (lesson, "line of a solution or hidden test"),
        (other_lesson, "line of a solution or hidden test"),
        (assignment, "line of a solution or hidden test"),
        (module, "line of a solution or hidden test"),
        (copy / "docs" / "students.md", "nbgrader marker 'END HIDDEN TESTS'"),
        (copy / "README.md", "nbgrader marker 'MARK SCHEME'"),
        (copy / "solutions", "secret path"),
        (copy / "solutions" / ps.parent.name / "renamed.txt", "nbgrader marker 'BEGIN SOLUTION'"),
        (copy / ".git" / "HEAD", "secret path"),
        (copy / "nbgrader_config.py", "an nbgrader_config.py that is not the edition's own"),
    ]
    missed = [f"{p.relative_to(copy)}: {what}" for p, what in expected
              if not any(line.startswith(f"{p.relative_to(copy)}: {what}") for line in found)]
    assert missed == [], f"the leak check missed {missed}; it found:\n" + "\n".join(found)
    assert any(repr(normalise(code)) in line for line in found), found
    assert any(repr(normalise(backslash)) in line for line in found), found


def test_a_leak_stops_the_build(tmp_path):
    """A solution line pasted into a lesson: the build raises, names the file, and writes no archive."""
    root = tmp_path / "repo"
    for name in ("ddpm_scratch", "lessons", "assignments", "course", "docs", "pyproject.toml", "environment.yml"):
        src = ROOT / name
        (shutil.copytree(src, root / name, ignore=shutil.ignore_patterns(*JUNK)) if src.is_dir()
         else shutil.copy2(src, root / name))
    code, _ = planted_lines()
    lesson = sorted((root / "lessons").glob("*.ipynb"))[-1]
    nb = nbformat.read(lesson, as_version=4)
    nb.cells[-1].source += "\n" + code
    nbformat.write(nb, lesson)
    with pytest.raises(LeakError) as caught:
        build(root, tmp_path / "dist")
    assert any(line.startswith(f"lessons/{lesson.name}: line of a solution") for line in caught.value.found)
    assert not list((tmp_path / "dist").glob("*.tar.gz")) and not list((tmp_path / "dist").glob("*.zip"))


# ---- archives ----------------------------------------------------------------------------------------------------

def test_archives_hold_exactly_the_folder(edition):
    folder = edition["folder"]
    want = {f"{folder.name}/{rel.as_posix()}": (folder / rel).read_bytes() for rel in files_of(folder)}
    assert len(want) > 10
    with tarfile.open(edition["tar"]) as tar:
        members = tar.getmembers()
        have = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
        assert all(m.isfile() or m.isdir() for m in members), "only plain files and folders"
        assert all(m.name.startswith(f"{folder.name}/") and ".." not in m.name for m in members)
    assert have == want, (f"tar.gz: missing {sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}, "
                          f"differing {sorted(k for k in set(want) & set(have) if want[k] != have[k])}")
    with zipfile.ZipFile(edition["zip"]) as zf:
        have = {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}
    assert have == want, f"zip: missing {sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}"


def test_archives_are_reproducible(edition, tmp_path):
    again = build(ROOT, tmp_path)
    for key in ("tar", "zip"):
        assert again[key].name == edition[key].name
        assert again[key].read_bytes() == edition[key].read_bytes(), f"{key}: two builds of one tree differ"


# ---- set-up --------------------------------------------------------------------------------------------------------

def makefile_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_student_makefile_installs_as_the_main_makefile(edition):
    main, student = makefile_lines(ROOT / "Makefile"), makefile_lines(edition["folder"] / "Makefile")
    torch_line = [line for line in main if line.startswith("TORCH ?=")]
    assert torch_line and torch_line == [line for line in student if line.startswith("TORCH ?=")], (
        "the student Makefile must choose torch as the main Makefile does (course/student_edition/Makefile)")
    for recipe in ("\t$(BIN)/python -m pip install --quiet --upgrade pip",
                   '\t$(BIN)/python -m pip install --quiet "$(TORCH)"'):
        assert recipe in main and recipe in student, recipe
    assert '\t$(BIN)/python -m pip install --quiet -e ".[course]"' in student
    # every `make X` the student README and guide mention is a target of the student Makefile
    targets = {m.group(1) for line in student if (m := re.match(r"^([a-z][a-z-]*):", line))}
    said = set()
    for doc in ("README.md", "docs/students.md"):
        said |= set(re.findall(r"\bmake ([a-z][a-z-]*)", (edition["folder"] / doc).read_text()))
    assert {"check", "lab"} <= said and said <= targets, f"documented but not in the student Makefile: {said - targets}"


def student_env(copy: Path) -> dict[str, str]:
    """The environment of a student's shell: no venv of this repository active, nothing of it on the paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    ours = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours)
    env.update(DDPM_SCRATCH_FAST="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # as tests/course/test_lessons.py
    # no user Jupyter config or kernels: the kernel must be the venv's own
    env.update(JUPYTER_CONFIG_DIR=str(copy / ".jupyter"), JUPYTER_DATA_DIR=str(copy / ".jupyter-data"))
    return env


RUN_LESSON = r"""
import json, pathlib, sys, time
import nbformat
from nbclient import NotebookClient
import ddpm_scratch

lesson = pathlib.Path(sys.argv[1]).resolve()
nb = nbformat.read(lesson, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(
    "import json as _j, sys as _s, ddpm_scratch as _d\n"
    "print(_j.dumps({'package': _d.__file__, 'python': _s.executable, 'prefix': _s.prefix}))"))
start = time.perf_counter()
NotebookClient(nb, timeout=int(sys.argv[2]), kernel_name="python3",
               resources={"metadata": {"path": str(lesson.parent)}}).execute()
kernel = json.loads(nb.cells[-1].outputs[0]["text"])
print(json.dumps({"runner_package": ddpm_scratch.__file__, "kernel": kernel, "seconds": time.perf_counter() - start,
                  "ran": all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")}))
"""


@pytest.mark.slow
def test_setup_and_a_lesson_run_inside_the_edition(edition, tmp_path, record_property):
    with tarfile.open(edition["tar"]) as tar:  # a clean copy: what a student unpacks
        tar.extractall(tmp_path, filter="data")
    copy = (tmp_path / edition["folder"].name).resolve()
    env = student_env(copy)

    start = time.perf_counter()
    done = subprocess.run(["make", "check"], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=SETUP_TIMEOUT)
    setup = time.perf_counter() - start
    assert done.returncode == 0, f"make check failed in the edition:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "ok: ddpm_scratch" in done.stdout and f"from {copy / 'ddpm_scratch'}" in done.stdout, done.stdout[-2000:]
    # setuptools installs the package as a plain path entry (a simple layout), without its warning about folders
    # named like the package (pyproject.toml: package-dir)
    assert "BuildBackendWarning" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-4000:]

    # `make validate` on the untouched release: nbgrader finds the edition's configuration, runs the notebook and
    # lists the answers still missing
    ps = sorted((copy / "assignments").iterdir())[0].name
    done = subprocess.run(["make", "validate", f"PS={ps}"], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=SETUP_TIMEOUT)
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "You did not provide a response" in said, f"make validate PS={ps}:\n{said[-4000:]}"
    assert "No nbgrader_config.py" not in said, f"make validate warns:\n{said[-4000:]}"

    python = copy / ".venv" / "bin" / "python"
    lesson = sorted((copy / "lessons").glob("*.ipynb"))[0]
    done = subprocess.run([str(python), "-c", RUN_LESSON, str(lesson), str(LESSON_TIMEOUT)], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=SETUP_TIMEOUT)
    assert done.returncode == 0, f"{lesson.name} failed in the edition:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ran"], f"{lesson.name}: some code cell did not run"
    for where in (result["runner_package"], result["kernel"]["package"]):
        assert Path(where).resolve().is_relative_to(copy / "ddpm_scratch"), f"ddpm_scratch imported from {where}"
    assert Path(result["kernel"]["prefix"]).resolve() == (copy / ".venv").resolve(), result["kernel"]
    line = (f"student edition: `make check` from nothing {setup:.0f} s; lessons/{lesson.name} in fast mode "
            f"{result['seconds']:.1f} s inside it")
    record_property("course_timing", line)
    print(line)
