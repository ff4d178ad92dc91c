"""Build the student edition: a folder and an archive with what a student needs and nothing an instructor keeps.

    python tools/student_edition.py                  # dist/ddpm_scratch-student/ + .tar.gz and .zip of it
    python tools/student_edition.py --out /tmp/ed    # somewhere else
    python tools/student_edition.py --check-only DIR # write nothing; run the leak check on an existing folder

What goes in is an allow-list, copied from the tree as it is when the command runs:

    ddpm_scratch/              the package (public by design: the lessons use it)
    lessons/                   the lesson notebooks
    assignments/               the nbgrader release of the problem sets (no answers, no hidden tests)
    pyproject.toml, environment.yml, LICENSE* (if the repository has one)    as they are
    docs/students.md           the student guide
    README.md, Makefile, .gitignore    from course/student_edition/ (the student README, a Makefile whose
                               `make lab` creates .venv exactly as the main Makefile does, a .gitignore for a
                               public repository of the edition)
    nbgrader_config.py         from course/student_edition/: how `make validate` runs a notebook (the cell
                               timeout grading uses), so that nbgrader finds a configuration there

Everything else stays out: solutions/, course/ (the jupytext sources, with answers and hidden tests), tests/
(tests/course/mistakes/ lists wrong answers; the package tests need the dev tools and are no use to a student),
tools/, benchmarks/, the instructors' nbgrader_config.py and grading/, .git (no history), caches and outputs.

Before the archive is written the folder is checked by path and by content (`leaks`): no secret folder or file
(solutions, problem_sets, mistakes, grading, gradebook, .git, nbgrader's source/release/submitted/... folders), no
nbgrader marker (BEGIN/END SOLUTION, BEGIN/END HIDDEN TESTS, MARK SCHEME) anywhere in any file, and no non-trivial
line of a solution or hidden-test region of course/problem_sets/*.py in any text file (notebooks are read cell by
cell, so lines are compared as a student sees them, not JSON-escaped). A leak stops the build with exit status 1
and no archive.

The archives are reproducible: the same tree gives the same bytes (sorted entries, fixed times and owners).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import stat
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python tools/student_edition.py` puts tools/ first, not the root
    sys.path.insert(0, str(ROOT))

from tools.build_notebooks import build as build_notebooks  # noqa: E402
from tools.build_notebooks import build_notebook  # noqa: E402

NAME = "ddpm_scratch-student"
EXTRAS = Path("course") / "student_edition"  # the edition's own files: README.md, Makefile, gitignore
# (source in the repository, name in the edition); folders are copied whole, minus JUNK
CONTENTS = (
    ("ddpm_scratch", "ddpm_scratch"),
    ("lessons", "lessons"),
    ("assignments", "assignments"),
    ("pyproject.toml", "pyproject.toml"),
    ("environment.yml", "environment.yml"),
    ("docs/students.md", "docs/students.md"),
    (f"{EXTRAS}/README.md", "README.md"),
    (f"{EXTRAS}/Makefile", "Makefile"),
    (f"{EXTRAS}/gitignore", ".gitignore"),
    (f"{EXTRAS}/nbgrader_config.py", "nbgrader_config.py"),
)
REQUIRED = ("ddpm_scratch/__init__.py", "README.md", "Makefile", "pyproject.toml", "docs/students.md")
# Local leftovers never shipped (what .gitignore ignores inside the copied folders).
JUNK = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", "outputs", "runs", ".cache", ".DS_Store")

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "MARK SCHEME")
REGIONS = (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
# Path parts that never belong in the edition: instructors' folders, nbgrader's workspace, version control.
SECRET_PARTS = frozenset({
    "solutions", "problem_sets", "mistakes", "course", "tests", "grading", "gradebook.db", ".git", "source",
    "release", "submitted", "autograded", "feedback", ".ipynb_checkpoints",
})
# The edition's own nbgrader_config.py (how `make validate` runs a notebook); the instructors' (which maps the
# grading folders) never goes in: an nbgrader_config.py is a leak unless it is this file, at the top.
EDITION_CONFIG = EXTRAS / "nbgrader_config.py"  # relative to the course root
SECRET_SUFFIXES = (".db", ".db-journal", ".sqlite")
MIN_LINE = 12  # characters (stripped): shorter lines ("return x", ")", "else:") prove nothing on their own
# Idioms that a reference answer or hidden test shares with public material (the package, a lesson) and that give
# nothing away; reviewed one by one. The leak check ignores exactly these (stripped) lines. When the check stops on
# a line that is an idiom rather than part of an answer, add it here; otherwise remove it from the public file.
SHARED_LINES = frozenset({
    "loss.backward()",  # any training loop (package: machinery/loop.py's optimisation_step; ps2's hidden tests)
    "optimizer.step()",
    "optimizer.zero_grad()",
    "for t in range(1, T + 1):",  # a loop over the lecture's t (lesson 01; ps1's answer loops the same way)
    "T = betas.numel() - 1",  # the convention betas[0] = 0 (package: schedules; ps1's answer)
    "if eta == 0:",  # a branch on a Python number (package: ddim.ddim_step; ps4's answer branches the same way)
    # the probability-flow drift from a score (package: sde.probability_flow_drift; ps3 part C asks for the score
    # from a denoiser's output, the line before it in the answer)
    "return sde.drift(x, t) - 0.5 * per_example(sde.diffusion(t) ** 2, x) * score",
})
FIXED_TIME = 315532800  # 1980-01-01 00:00:00 UTC, the earliest time a zip file can hold: reproducible archives


def version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


# ---- what is secret --------------------------------------------------------------------------------------------

def _region_lines(source: str) -> tuple[list[str], list[str]]:
    """(lines inside solution or hidden-test regions, lines outside them) of one cell; marker lines dropped."""
    inside, outside, open_ = [], [], None
    for line in source.split("\n"):
        begin = next((b for b, _ in REGIONS if b in line), None)
        end = next((e for _, e in REGIONS if e in line), None)
        if begin:
            open_ = begin
        elif end:
            open_ = None
        else:
            (inside if open_ else outside).append(line)
    return inside, outside


def significant(line: str) -> bool:
    """A line worth searching for: at least MIN_LINE characters once stripped, and not only punctuation."""
    text = line.strip()
    return len(text) >= MIN_LINE and any(ch.isalnum() for ch in text)


def normalise(line: str) -> str:
    """A line as the leak check compares it: without a trailing `# comment` (a comment line itself stays) and
    without any whitespace, so that re-spacing or re-commenting a copied answer does not hide it."""
    text = line.strip()
    if not text.startswith("#"):
        text = re.sub(r"\s#.*$", "", text)
    return re.sub(r"\s+", "", text)


def secret_lines(root: Path = ROOT) -> dict[str, str]:
    """{normalised line: "course/problem_sets/<ps>.py"} for every significant line found only inside solution or
    hidden-test regions of the problem-set sources. A line that also appears outside the regions of any problem set
    (a signature, a visible assert: students see it in a release) is public, and so are the SHARED_LINES."""
    secret: dict[str, str] = {}
    public: set[str] = {normalise(line) for line in SHARED_LINES}
    for path in sorted((root / "course" / "problem_sets").glob("ps*.py")):
        for cell in build_notebook(path, problem_set=True).cells:  # cell sources as in the notebook (no "# ")
            inside, outside = _region_lines(cell.source)
            for line in inside:
                if significant(line):
                    secret.setdefault(normalise(line), str(path.relative_to(root)))
            public.update(normalise(line) for line in outside)
    return {line: where for line, where in sorted(secret.items()) if line not in public}


# ---- the leak check -----------------------------------------------------------------------------------------------

def _text_lines(path: Path, data: bytes) -> list[str] | None:
    """The lines a reader of this file sees: every cell source and text output of a notebook, else the decoded
    text; None for a binary file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            return text.splitlines()
        pieces = []
        for cell in nb.get("cells", []):
            pieces.append(_joined(cell.get("source", "")))
            for output in cell.get("outputs", []):
                pieces.append(_joined(output.get("text", "")))
                pieces.extend(_joined(v) for v in output.get("traceback", []))
                pieces.extend(_joined(v) for v in output.get("data", {}).values() if isinstance(v, (str, list)))
        return "\n".join(pieces).splitlines() + text.splitlines()
    return text.splitlines()


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def leaks(folder: Path, secrets: dict[str, str], root: Path = ROOT) -> list[str]:
    """Everything in `folder` a student must not get, one line each (empty: the folder is clean): secret paths,
    nbgrader markers in any file, lines of `secrets` (see secret_lines) in any text file, and any nbgrader_config.py
    but the edition's own of the course `root`."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        bad = sorted(set(rel.parts) & SECRET_PARTS)
        if bad or path.name.endswith(SECRET_SUFFIXES):
            found.append(f"{rel}: secret path ({', '.join(bad) or path.suffix})")
        if path.is_symlink():
            found.append(f"{rel}: a symbolic link (the edition holds plain files only)")
            continue
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "nbgrader_config.py" and (rel != Path(path.name) or
                                                   data != (root / EDITION_CONFIG).read_bytes()):
            found.append(f"{rel}: an nbgrader_config.py that is not the edition's own ({EDITION_CONFIG})")
        for marker in MARKERS:
            if marker.encode() in data:
                found.append(f"{rel}: nbgrader marker '{marker}'")
        lines = _text_lines(path, data)
        for line in sorted({normalise(line) for line in lines or []} & secrets.keys()):
            found.append(f"{rel}: line of a solution or hidden test ({secrets[line]}): {line!r}")
    return found


# ---- building -----------------------------------------------------------------------------------------------------

def copy_tree(root: Path, folder: Path) -> None:
    """Copy the allow-list (CONTENTS, plus LICENSE* files of the root) into `folder`, which must not exist."""
    ignore = shutil.ignore_patterns(*JUNK)
    contents = list(CONTENTS) + [(p.name, p.name) for p in sorted(root.glob("LICEN[CS]E*")) if p.is_file()]
    for source, name in contents:
        src, dst = root / source, folder / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"the edition lacks {missing}: is {root} the course repository?")


def files_of(folder: Path) -> list[Path]:
    """The edition's files, relative to the folder, sorted (the archives hold exactly these)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644


def write_tar(folder: Path, archive: Path) -> None:
    """A reproducible .tar.gz of `folder` under its own name: sorted, fixed time, owner root, no gzip name/time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({parent for rel in files_of(folder) for parent in rel.parents if parent != Path(".")})
        for rel in sorted([*dirs, *files_of(folder)], key=lambda p: p.as_posix()):
            info = tarfile.TarInfo(f"{folder.name}/{rel.as_posix()}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_TIME, 0, 0, "root", "root"
            if (folder / rel).is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = (folder / rel).read_bytes()
                info.size, info.mode = len(data), _mode(folder / rel)
                tar.addfile(info, io.BytesIO(data))
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())


def write_zip(folder: Path, archive: Path) -> None:
    """A reproducible .zip of `folder` under its own name (for a learning-management system)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in files_of(folder):
            info = zipfile.ZipInfo(f"{folder.name}/{rel.as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.create_system = zipfile.ZIP_DEFLATED, 3  # 3: Unix, so the mode bits count
            info.external_attr = _mode(folder / rel) << 16
            zf.writestr(info, (folder / rel).read_bytes())


def stale_notebooks(root: Path = ROOT) -> list[str]:
    """Notebooks that are not the build of their sources (the edition would ship them as they are)."""
    changed, errors = build_notebooks(root, check=True)
    return changed + errors


def build(root: Path = ROOT, out: Path | None = None) -> dict[str, Path]:
    """Write <out>/ddpm_scratch-student/ and its archives (replacing earlier ones); return their paths.
    Raises LeakError, leaving the folder for inspection and no archive, when the leak check finds anything."""
    out = (out or root / "dist").resolve()
    folder = out / NAME
    inside = [src for src, _ in CONTENTS if folder.is_relative_to(root / src)]
    if inside:
        raise ValueError(f"out={out} lies inside {inside[0]}/, which the edition copies; choose another folder")
    tar_path, zip_path = out / f"{NAME}-{version(root)}.tar.gz", out / f"{NAME}-{version(root)}.zip"
    if folder.exists():
        shutil.rmtree(folder)
    for old in (tar_path, zip_path):
        old.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    copy_tree(root, folder)
    found = leaks(folder, secret_lines(root), root)
    if found:
        raise LeakError(found)
    write_tar(folder, tar_path)
    write_zip(folder, zip_path)
    return {"folder": folder, "tar": tar_path, "zip": zip_path}


class LeakError(RuntimeError):
    def __init__(self, found: list[str]):
        self.found = found
        super().__init__("the student edition would leak:\n  " + "\n  ".join(found))


def _size(path: Path) -> str:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{size / 1024:.0f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: dist/ of the root)")
    parser.add_argument("--root", type=Path, default=ROOT, help="course root (default: this repository)")
    parser.add_argument("--check-only", type=Path, default=None, metavar="DIR",
                        help="write nothing; run the leak check on the edition folder DIR")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check_only is not None:
        found = leaks(args.check_only, secret_lines(root), root)
        print("\n".join(f"leak: {line}" for line in found) or f"{args.check_only}: no leak found")
        return 1 if found else 0
    for line in stale_notebooks(root):
        print(f"warning: not the build of its source: {line}; run `make release` first (the edition ships lessons/ "
              "and assignments/ as they are)", file=sys.stderr)
    try:
        built = build(root, args.out)
    except (LeakError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    folder = built["folder"]
    print(f"{folder}: {len(files_of(folder))} files, {_size(folder)}; "
          f"{', '.join(sorted(p.name for p in folder.iterdir()))}")
    for key in ("tar", "zip"):
        print(f"{built[key]}: {_size(built[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
