"""Build the course notebooks from their jupytext sources, and check the source format contract.

    python tools/build_notebooks.py            # write what changed
    python tools/build_notebooks.py --check    # write nothing; list what would change, exit 1 if anything would

    course/lessons/NN_topic.py         ->  lessons/NN_topic.ipynb
    course/problem_sets/psN_topic.py   ->  solutions/psN_topic/psN_topic.ipynb   (nbgrader's source notebook)

Cell options after `# %%` (parsed by jupytext into cell metadata) become nbformat/nbgrader metadata:
`id` -> the cell id (and nbgrader's grade_id), `kind` = solution | tests | manual (problem sets only), `points`.
Outputs and execution counts are never written, and the bytes are a function of the source alone, so a rebuild
of an unchanged source changes nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parent.parent

ID = re.compile(r"^[a-z0-9_]{1,64}$")
KINDS = ("solution", "tests", "manual")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")  # nbgrader matches substrings
MARK_SCHEME = "MARK SCHEME"
JUPYTEXT_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker", "region_name")
NBGRADER_IGNORES = (".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback")  # nbgrader's CourseDirectory.ignore
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


class ContractError(ValueError):
    """A source breaks the notebook source format contract; the message names the file and the cell."""


def _fail(path: Path, where: str, message: str) -> None:
    raise ContractError(f"{path}: {where}: {message}")


def _where(index: int, cell_id: str | None) -> str:
    return f"cell {index + 1}" + (f' (id="{cell_id}")' if cell_id else "")


def _regions(path: Path, where: str, source: str, begin: str, end: str) -> int:
    """Number of begin/end regions in `source`; markers must be whole `### ...` lines, paired and not nested."""
    count, inside = 0, False
    for line in source.split("\n"):
        if begin not in line and end not in line:
            continue
        if line.strip() not in (f"### {begin}", f"### {end}"):
            _fail(path, where, f"marker line {line.strip()!r} must read exactly '### {begin}' or '### {end}'")
        if begin in line:
            if inside:
                _fail(path, where, f"'### {begin}' inside an open region")
            inside, count = True, count + 1
        else:
            if not inside:
                _fail(path, where, f"'### {end}' without '### {begin}'")
            inside = False
    if inside:
        _fail(path, where, f"'### {begin}' without '### {end}'")
    return count


def _points(path: Path, where: str, meta: dict) -> float:
    points = meta.get("points")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
        _fail(path, where, f"points must be a positive number, got {points!r}")
    return points


def nbgrader_metadata(path: Path, index: int, cell, meta: dict) -> dict:
    """metadata.nbgrader (schema 3) for one problem-set cell, after checking the contract for its kind."""
    cell_id, kind = meta.get("id"), meta.get("kind")
    where = _where(index, cell_id)
    if kind is not None and kind not in KINDS:
        _fail(path, where, f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)} (or none for a read-only cell)")
    if "points" in meta and kind not in ("tests", "manual"):
        _fail(path, where, f"points given on a cell of kind {kind!r}; only tests and manual cells carry points")
    if MARK_SCHEME in cell.source:
        _fail(path, where, "mark schemes are not part of the contract (nbgrader allows them in task cells only)")
    solutions = _regions(path, where, cell.source, "BEGIN SOLUTION", "END SOLUTION")
    hidden = _regions(path, where, cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    if hidden and kind != "tests":
        _fail(path, where, "hidden-test markers outside a tests cell (they would be released to students)")
    if solutions and kind not in ("solution", "manual"):
        _fail(path, where, "solution markers outside a solution or manual cell (the answer would be released)")
    expected_type = {"solution": "code", "tests": "code", "manual": "markdown"}.get(kind)
    if expected_type and cell.cell_type != expected_type:
        _fail(path, where, f'kind="{kind}" must be a {expected_type} cell, not {cell.cell_type}')
    if kind in ("solution", "manual") and not solutions:
        _fail(path, where, f'kind="{kind}" needs its answer between ### BEGIN SOLUTION and ### END SOLUTION')

    nbgrader = {"grade": False, "grade_id": cell_id, "locked": True, "schema_version": 3, "solution": False,
                "task": False}
    if kind == "solution":
        nbgrader.update(locked=False, solution=True)
    elif kind == "tests":
        nbgrader.update(grade=True, points=_points(path, where, meta))
    elif kind == "manual":
        nbgrader.update(grade=True, locked=False, solution=True, points=_points(path, where, meta))
    return nbgrader


def _new_cell(cell, cell_id: str, metadata: dict):
    make = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}[cell.cell_type]
    return make(source=cell.source, id=cell_id, metadata=metadata)


def build_notebook(path: Path, problem_set: bool) -> nbformat.NotebookNode:
    """The notebook for one jupytext percent source: stable ids, contract metadata, no outputs."""
    text = jupytext.read(path, fmt="py:percent")
    cells, seen = [], set()
    for index, cell in enumerate(text.cells):
        meta = {k: v for k, v in cell.metadata.items() if k not in JUPYTEXT_KEYS}
        cell_id = meta.pop("id", None)
        where = _where(index, cell_id)
        if cell_id is not None and not (isinstance(cell_id, str) and ID.match(cell_id)):
            _fail(path, where, f"id {cell_id!r} must match [a-z0-9_]+ (at most 64 characters)")
        if problem_set:
            if cell_id is None:
                _fail(path, where, "every problem-set cell needs an id")
            meta["nbgrader"] = nbgrader_metadata(path, index, cell, {**meta, "id": cell_id})
            meta.pop("kind", None)
            meta.pop("points", None)
        else:
            for key in ("kind", "points"):
                if key in meta:
                    _fail(path, where, f"{key} belongs to problem sets, not lessons")
            for marker in MARKERS:
                if marker in cell.source:
                    _fail(path, where, f"nbgrader marker '{marker}' in a lesson")
            if cell_id is None:  # derived from the content: editing one cell does not renumber the others
                cell_id = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
                while cell_id in seen:
                    cell_id = hashlib.sha1(cell_id.encode()).hexdigest()[:8]
        if cell_id in seen:
            _fail(path, where, f'duplicate id "{cell_id}"')
        seen.add(cell_id)
        cells.append(_new_cell(cell, cell_id, meta))

    if problem_set and not any(c.metadata["nbgrader"]["grade"] and c.cell_type == "code" for c in cells):
        _fail(path, "notebook", 'a problem set needs at least one kind="tests" cell')
    if not problem_set:
        code = [c for c in cells if c.cell_type == "code"]
        if not code or code[0].id != "parameters" or "parameters" not in code[0].metadata.get("tags", []):
            _fail(path, "notebook", 'the first code cell must be the parameters cell: # %% id="parameters" '
                  'tags=["parameters"]')
    nb = new_notebook(cells=cells, metadata=METADATA)
    nbformat.validate(nb)
    return nb


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    """nbformat's own serialisation (sorted keys, indent 1) with a final newline, as Jupyter saves notebooks."""
    return (nbformat.writes(nb) + "\n").encode()


def targets(root: Path = ROOT) -> list[tuple[Path, Path, bool]]:
    """(source, built notebook, is a problem set) for every source under course/."""
    lessons = [(src, root / "lessons" / f"{src.stem}.ipynb", False)
               for src in sorted((root / "course" / "lessons").glob("*.py")) if not src.name.startswith("_")]
    problem_sets = [(src, root / "solutions" / src.stem / f"{src.stem}.ipynb", True)
                    for src in sorted((root / "course" / "problem_sets").glob("ps*.py"))]
    return lessons + problem_sets


def strays(root: Path = ROOT) -> list[str]:
    """Built files without a source, and files in solutions/<ps>/ that nbgrader would copy into the release."""
    built = {dst for _, dst, _ in targets(root)}
    found = []
    for nb in sorted((root / "lessons").glob("*.ipynb")):
        if nb not in built:
            found.append(f"{nb.relative_to(root)}: no source course/lessons/{nb.stem}.py (remove it or add one)")
    for folder in sorted(p for p in (root / "solutions").glob("*") if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            parts = path.relative_to(folder).parts
            if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in NBGRADER_IGNORES):
                continue
            if path.is_file() and path not in built:
                found.append(f"{path.relative_to(root)}: not built from course/problem_sets/ "
                             "(nbgrader would copy it into the release; remove it)")
    return found


def build(root: Path = ROOT, check: bool = False) -> tuple[list[str], list[str]]:
    """Build every notebook (with check: only compare). Return (notebooks written or out of date, errors)."""
    changed, errors = [], []
    for src, dst, problem_set in targets(root):
        try:
            data = notebook_bytes(build_notebook(src, problem_set))
        except ContractError as error:
            errors.append(str(error))
            continue
        if dst.exists() and dst.read_bytes() == data:
            continue
        changed.append(f"{dst.relative_to(root)} (from {src.relative_to(root)})")
        if not check:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
    return changed, errors + strays(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook would change")
    parser.add_argument("--root", type=Path, default=ROOT, help="course root (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    changed, errors = build(root, check=args.check)
    for line in changed:
        print(f"{'would change' if args.check else 'wrote'}: {line}")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if not changed and not errors:
        print(f"{len(targets(root))} notebooks up to date")
    return 1 if errors or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
