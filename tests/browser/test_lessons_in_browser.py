"""Every lesson as a student meets it: opened in JupyterLab in headless Chromium (Debian's package, driven by
Playwright's Python package), Run All, then every slider dragged.

The lessons run in fast mode (DDPM_SCRATCH_FAST=1) with their sliders on (DDPM_SCRATCH_WIDGETS=1, which
ddpm_scratch.machinery.notebook.live_frontend lets win over fast mode), in a copy of lessons/ in a scratch folder.
For each lesson the test checks that every code cell ran and none has an error output (read from the notebook, saved
through the page), that no widget reads "Error displaying widget", that each markdown cell with $...$ shows MathJax
and no math error, and that every figure in the page is an image that loaded. Then it drags each slider (one per
control of each `explore(...)` call in course/lessons/<lesson>.py) and checks that the figure under it is redrawn,
that the cell never stands without a figure meanwhile, and that no error appears. The seconds each step took go to
the test report's "course grading times".
"""

from __future__ import annotations

import ast
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from jupyterlab_page import CHROMIUM_FLAGS, WIDGET_ERROR, NotebookPage, chromium_path, move_slider, start_lab, stop_lab

pytestmark = [pytest.mark.course, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
LESSON_TIMEOUT = 900  # seconds for Run All of one lesson; fast mode takes 15-75 s: this only guards against a hang
REDRAW_TIMEOUT = 300  # seconds for one slider's redraw (the lesson test's cell timeout): a hang guard, not a limit
VANISHED_TOLERANCE = 0.5  # seconds without a figure during a redraw: one poll of the page, not a figure gone
PAGE_TIMEOUT = 120  # seconds for the page to open, the kernel to start, the notebook to save
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)  # fenced and inline code in markdown
KERNEL_ENV = {"DDPM_SCRATCH_FAST": "1", "DDPM_SCRATCH_WIDGETS": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as tests/course/test_lessons.py: one thread a worker


def lesson_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "course" / "lessons").glob("*.py") if not p.name.startswith("_"))


def explore_controls(lesson: str) -> list[str]:
    """The control names of every explore(...) call in the lesson's source, in order: one slider each."""
    tree = ast.parse((ROOT / "course" / "lessons" / f"{lesson}.py").read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "explore") or \
                    (isinstance(func, ast.Attribute) and func.attr == "explore"):
                names += [k.arg for k in node.keywords]
    return names


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of lessons/, kernels in fast mode with sliders on."""
    course = tmp_path_factory.mktemp("browser_course")
    shutil.copytree(ROOT / "lessons", course / "lessons", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = start_lab(course, tmp_path_factory.mktemp("jupyter_home"), KERNEL_ENV)
    yield server
    stop_lab(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, driven by Playwright (no browser download: the installed one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright's Python package: pip install -e '.[browser]' (make test does)")
    executable = chromium_path()
    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium_profile")), executable_path=executable, headless=True,
        args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
    yield context
    context.close()
    playwright.stop()


def test_every_lesson_has_a_notebook():
    assert lesson_names(), "no lesson sources in course/lessons/"
    missing = [n for n in lesson_names() if not (ROOT / "lessons" / f"{n}.ipynb").is_file()]
    assert not missing, f"lessons without a built notebook (make notebooks): {missing}"


@pytest.mark.parametrize("lesson", lesson_names())
def test_lesson_in_jupyterlab(lesson, lab, browser, tmp_path, record_property):
    page = browser.new_page()
    problems: list[str] = []
    notebook = NotebookPage(page, lab, f"lessons/{lesson}.ipynb")
    screenshot = tmp_path / "page.png"  # of the page as it stood when the test failed
    finished = False
    try:
        start = time.monotonic()
        notebook.open(PAGE_TIMEOUT)
        opened = time.monotonic() - start
        ran = notebook.run_all(LESSON_TIMEOUT)
        notebook.save(PAGE_TIMEOUT)

        # what ran: read back from the notebook the page saved
        nb = nbformat.read(lab.root / "lessons" / f"{lesson}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        not_run = [c.get("id") for c in code if not c.get("execution_count")]
        if not_run:
            problems.append(f"{len(not_run)} of {len(code)} code cells did not run, from cell {not_run[0]!r} on")
        for cell in code:
            for out in cell.outputs:
                if out.output_type == "error":
                    problems.append(f"cell {cell.get('id')!r}: {out.ename}: {out.evalue}")

        # what the page shows
        if notebook.count(f"text={WIDGET_ERROR}"):
            problems.append(f'after Run All a widget reads "{WIDGET_ERROR}"')
        markdown = [CODE.sub("", c.source) for c in nb.cells if c.cell_type == "markdown"]  # $ in code is no math
        deadline = time.monotonic() + PAGE_TIMEOUT
        while (no_math := notebook.markdown_cells_without_math(markdown)) and time.monotonic() < deadline:
            time.sleep(1)  # MathJax typesets asynchronously after the cells render
        if no_math:
            problems.append(f"markdown cells {no_math} (among the markdown cells) have $...$ but no rendered math")
        if notebook.count("mjx-merror"):
            problems.append(f"{notebook.count('mjx-merror')} math errors (mjx-merror) in the rendered markdown")
        saved_images = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
        if saved_images == 0:  # every lesson draws figures: none means they were never shown (a backend, say)
            problems.append("no figure in the notebook's outputs")
        if notebook.static_images() != saved_images:
            problems.append(f"{notebook.static_images()} images in the page's outputs, {saved_images} in the notebook")
        if notebook.broken_images():
            problems.append(f"{notebook.broken_images()} images did not load")

        # the sliders: one per control of each explore(...) call, each moved, each redrawing its figure
        expected = explore_controls(lesson)
        sliders = notebook.sliders()
        found = [sliders.nth(i).locator(".widget-label").inner_text().strip() for i in range(sliders.count())]
        if found != expected:
            problems.append(f"sliders on the page {found}, explore controls in the source {expected}")
        moves = []
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            text, value = slider.locator(".widget-readout").inner_text().strip(), \
                slider.locator(".noUi-handle").get_attribute("aria-valuetext")
            if float(text) != float(value):
                problems.append(f"slider {found[i]}: its readout shows {text} for the value {value}")
            move = move_slider(page, slider, REDRAW_TIMEOUT)
            moves.append(move)
            where = f"slider {move.name} ({move.before} -> {move.after})"
            if move.after == move.before:
                problems.append(f"slider {move.name}: the drag did not change its value {move.before}")
            elif not move.changed:
                problems.append(f"{where}: the figure under it did not change in {move.seconds:.0f} s")
            if move.vanished > VANISHED_TOLERANCE:
                problems.append(f"{where}: the cell showed no figure for {move.vanished:.1f} s of the redraw")
            if notebook.count(f"text={WIDGET_ERROR}"):
                problems.append(f'{where}: a widget reads "{WIDGET_ERROR}"')
            cell = slider.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
                                  "' jp-Cell ')][1]")
            cell_text = cell.locator(".jp-Cell-outputArea").inner_text()
            cell.screenshot(path=str(tmp_path / f"slider_{i}_{move.name}.png"))  # for a person to look at
            if "Traceback" in cell_text:
                problems.append(f"{where}: the redraw shows a traceback: ...{cell_text[-600:]}")
        moved = sum(m.seconds for m in moves)
        record_property("course_timing", f"lessons/{lesson}.ipynb in JupyterLab (Chromium): opened {opened:.1f} s, "
                        f"Run All {ran:.1f} s, {len(moves)} sliders redrawn in {moved:.1f} s")
        finished = True
    finally:
        if problems or not finished:
            page.screenshot(path=str(screenshot))
        page.close()
        try:
            lab.shut_down_kernels()
        except Exception as error:  # noqa: BLE001 - the lesson's own problems are the report; this one goes beside them
            problems.append(f"shutting the kernels down failed: {error!r}")
    assert not problems, f"lessons/{lesson}.ipynb in JupyterLab (screenshot: {screenshot}):\n  " + "\n  ".join(problems)
