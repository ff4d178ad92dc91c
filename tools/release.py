"""Regenerate the student release assignments/<ps>/ from the source notebooks solutions/<ps>/.

    python tools/release.py                         # every problem set in solutions/
    python tools/release.py ps1_diffusion_kernel    # just these
    python tools/release.py --check                 # write nothing; list differences, exit 1 if any

`nbgrader generate_assignment` runs in scratch copies of the course (this repository's nbgrader_config.py and
solutions/<ps>/ only, one per problem set, two at a time, with throwaway gradebooks and no user Jupyter config), so
the instructor's gradebook in grading/ is never touched; the result then replaces assignments/<ps>/. The release is
a function of solutions/ alone: nbgrader's checksums are deterministic and the cell ids come from the build
(tools/build_notebooks.py).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nbgrader_env(config_dir: Path) -> dict[str, str]:
    """Environment for an nbgrader subprocess: this Python's bin first on PATH (nbgrader runs `alembic` from
    PATH) and Jupyter config read from `config_dir` only (so ~/.jupyter cannot change the result)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    return env


# A guard against an nbgrader command that never returns, not a speed limit: `generate_assignment` takes about 7 s
# on two idle cores (nbgrader executes no notebook there), so 10 minutes is far beyond any loaded machine.
GENERATE_GUARD = 600


def run_guarded(command: list[str], cwd: Path, env: dict[str, str], guard: float | None = None
                ) -> subprocess.CompletedProcess:
    """Run `command` (output captured as text). `guard` (seconds, None: none) is a hang guard: past it the command's
    process group is killed and subprocess.TimeoutExpired is raised, with what the command had printed."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # a group of its own, which the guard (or Ctrl-C) can kill
    try:
        stdout, stderr = process.communicate(timeout=guard)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(command, guard, output=stdout, stderr=stderr) from None
    except BaseException:  # KeyboardInterrupt: the group no longer sees the terminal's Ctrl-C
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def nbgrader(args: list[str], cwd: Path, env: dict[str, str] | None = None,
             guard: float | None = None) -> subprocess.CompletedProcess:
    """Run `nbgrader <args>` with this Python in `cwd` (nbgrader reads nbgrader_config.py from there), under the
    hang guard `guard` (see run_guarded). A grading kernel runs in a session of its own and exits when it sees its
    parent gone (ipykernel polls JPY_PARENT_PID)."""
    env = env if env is not None else nbgrader_env(cwd / ".jupyter")
    return run_guarded([sys.executable, "-m", "nbgrader", *args], cwd, env, guard)


def slowest_cell_seconds(nb) -> float:
    """The longest cell execution of an executed notebook (nbformat), from the timestamps nbclient records in the
    cell metadata (nbgrader's autograded copies have them): what the cell timeout of nbgrader_config.py guards."""
    def seconds(cell) -> float:
        timing = cell.metadata.get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if not (start and end):
            return 0.0
        parse = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end)]
        return (parse[1] - parse[0]).total_seconds()

    return max((seconds(c) for c in nb.cells if c.cell_type == "code"), default=0.0)


def problem_sets(root: Path = ROOT) -> list[str]:
    """Names of the problem sets that have a source notebook solutions/<ps>/<ps>.ipynb."""
    return sorted(p.parent.name for p in (root / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)


def generate(root: Path, name: str, workspace: Path) -> Path:
    """Run `nbgrader generate_assignment <name>` in `workspace`, a scratch copy of root's nbgrader_config.py and
    solutions/<name>/; return the release folder it made."""
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", workspace / "nbgrader_config.py")
    shutil.copytree(root / "solutions" / name, workspace / "solutions" / name,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
    done = nbgrader(["generate_assignment", name, "--force"], cwd=workspace, guard=GENERATE_GUARD)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{done.stdout}\n{done.stderr}")
    return workspace / "assignments" / name


def differences(expected: Path, actual: Path) -> list[str]:
    """Files (relative paths) missing from `actual`, extra in it, or with other bytes than in `expected`."""
    def files(folder: Path) -> set[Path]:
        return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()

    want, have = files(expected), files(actual)
    found = [f"{p}: missing" for p in sorted(want - have)]
    found += [f"{p}: not in the new release" for p in sorted(have - want)]
    found += [f"{p}: differs" for p in sorted(want & have) if not filecmp.cmp(expected / p, actual / p, shallow=False)]
    return found


def release(root: Path = ROOT, names: list[str] | None = None, check: bool = False) -> list[str]:
    """Regenerate (with check: only compare) assignments/<ps>/ for `names` (default: all); return what
    differed from the new release. With no names given, releases whose source is gone count too."""
    every = problem_sets(root)
    unknown = [n for n in names or [] if n not in every]
    if unknown:
        raise ValueError(f"no source notebook solutions/<ps>/<ps>.ipynb for {unknown}; known: {every}")
    names = names or every
    found = []
    with tempfile.TemporaryDirectory(prefix="ddpm_release_") as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        fresh = dict(zip(names, pool.map(lambda n: generate(root, n, Path(tmp) / n), names), strict=True))
        for name in names:
            changed = differences(fresh[name], root / "assignments" / name)
            found += [f"assignments/{name}/{line}" for line in changed]
            if changed and not check:
                shutil.rmtree(root / "assignments" / name, ignore_errors=True)
                shutil.copytree(fresh[name], root / "assignments" / name)
    if names == every:
        found += [f"assignments/{p.name}: release without a source in solutions/ (remove it)"
                  for p in sorted((root / "assignments").glob("*")) if p.name not in every]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("problem_sets", nargs="*", help="problem sets to release (default: all in solutions/)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the release would change")
    parser.add_argument("--root", type=Path, default=ROOT, help="course root (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        found = release(root, args.problem_sets, check=args.check)
    except ValueError as error:
        parser.error(str(error))
    for line in found:
        print(f"{'out of date' if args.check else 'updated'}: {line}")
    if not found:
        print(f"release up to date: {', '.join(args.problem_sets or problem_sets(root))}")
    stale = [line for line in found if line.endswith("(remove it)")]
    return 1 if stale or (args.check and found) else 0


if __name__ == "__main__":
    sys.exit(main())
