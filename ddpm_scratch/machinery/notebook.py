"""Helpers the lesson notebooks share: where figures go, showing them, sliders that degrade to a static figure, and
a scoped number of torch threads.

    OUT = lesson_output_dir("02_ddpm")         # <course>/outputs/02_ddpm, however the notebook was started
    show(fig, OUT / "losses.png")              # save the figure there, then display it below the cell
    explore(plot, t=(100, 0, 1000, 1))         # a slider per control in a live frontend; headless: plot(t=100) once
    with torch_threads(1): ...                 # the block runs on one thread; the previous count comes back after

Nothing here is lecture material; the lessons import it so that each helper is written (and tested) once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ..checks import check_int
from .viz import save_figure

__all__ = ["lesson_output_dir", "show", "live_frontend", "explore", "torch_threads"]

FAST_ENV = "DDPM_SCRATCH_FAST"  # "1": the lessons' quick, smaller run (tests, CI), headless unless WIDGETS_ENV is "1"
WIDGETS_ENV = "DDPM_SCRATCH_WIDGETS"  # "0": never draw sliders; "1": draw them in any IPython kernel, fast mode too
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # the mime type of a displayed widget (a progress bar, say)


def lesson_output_dir(name: str, cwd: str | Path | None = None) -> Path:
    """The folder for lesson `name`'s figures and runs: <course>/outputs/<name>.

    <course> is the nearest of cwd and its parents that holds lessons/<name>.ipynb (the course folder, whether the
    notebook was started from it or from lessons/); outside a course folder (a scratch copy of the notebook) it is
    cwd itself. cwd: where to start looking (default: the current working directory). Nothing is created.
    """
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be a lesson's file name without folders, e.g. '01_forward_process', got {name!r}")
    here = Path.cwd() if cwd is None else Path(cwd)
    here = here.resolve()
    course = next((p for p in (here, *here.parents) if (p / "lessons" / f"{name}.ipynb").is_file()), here)
    return course / "outputs" / name


def show(fig: Figure, path: str | Path) -> None:
    """Save fig to path (folders created, see viz.save_figure), then display it below the notebook cell."""
    import matplotlib.pyplot as plt  # pyplot only here: importing this module changes no global matplotlib state

    save_figure(fig, path)
    plt.show()


def live_frontend() -> bool:
    """Whether a notebook frontend that draws widgets is attached (JupyterLab, Jupyter Notebook, VS Code, Colab).

    False when the notebook runs headless (tests, CI, nbconvert, nbclient): with DDPM_SCRATCH_WIDGETS=0, without
    ipywidgets, outside an IPython kernel, in a kernel that none of those frontends started, or in fast mode
    (DDPM_SCRATCH_FAST=1). DDPM_SCRATCH_WIDGETS=1 turns the sliders on in any IPython kernel, fast mode included
    (another frontend that draws ipywidgets, or the browser test, which moves the sliders of the fast lessons).
    """
    choice = os.environ.get(WIDGETS_ENV, "")
    if choice == "0" or (os.environ.get(FAST_ENV, "0") == "1" and choice != "1"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return (choice == "1" or "JPY_SESSION_NAME" in os.environ  # a kernel started by Jupyter Server (Lab, Notebook)
            or "__vsc_ipynb_file__" in shell.user_ns or "google.colab" in sys.modules)  # VS Code, Colab


def explore(plot: Callable[..., object], **controls: tuple[float, float, float, float]) -> None:
    """Draw plot(**defaults); in a live notebook frontend (live_frontend()), with a slider per control that redraws it.

    controls: name=(default, low, high, step); all four ints make an integer slider, otherwise a float slider.
    Headless, plot is called once with the defaults and no widget is built; an error in it is the cell's error.

    Live, the sliders sit above the figure. A redraw (on release of a slider) keeps the old figure until plot has
    returned, then replaces it at once with what plot displayed and printed: a slow plot never leaves the space empty.
    Widgets that plot displays itself (a tqdm progress bar, say) are not shown: they would be closed by the time the
    figure appears, and a closed widget's view reads "Error displaying widget: model not found". While plot runs, a
    label under the sliders says so. An error in the first draw is the cell's error; an error in a redraw is shown
    in place of the figure.
    """
    for name, control in controls.items():
        if not (isinstance(control, tuple) and len(control) == 4):
            raise ValueError(f"control {name} must be a tuple (default, low, high, step), got {control!r}")
    defaults = {name: control[0] for name, control in controls.items()}
    if not live_frontend():
        plot(**defaults)
        return
    import ipywidgets as widgets
    from IPython import get_ipython
    from IPython.display import clear_output, display
    from IPython.utils.capture import capture_output

    sliders = {}
    for name, (default, low, high, step) in controls.items():
        if all(isinstance(v, int) for v in (default, low, high, step)):
            sliders[name] = widgets.IntSlider(value=default, min=low, max=high, step=step, description=name,
                                              continuous_update=False)
        else:  # the readout shows as many decimals as the control has (ipywidgets' default, 2, shows 0.008 as 0.01)
            sliders[name] = widgets.FloatSlider(value=default, min=low, max=high, step=step, description=name,
                                                continuous_update=False,
                                                readout_format=f".{_decimals(default, low, high, step)}f")
    status = widgets.Label()
    figure = widgets.Output()

    def draw(values: dict) -> None:
        """plot(**values) with everything it shows held back, then put in place of the previous figure at once."""
        captured = None
        try:
            with capture_output() as captured:
                plot(**values)
        finally:  # also after an error: what plot showed before it failed, then (from the caller) the traceback
            with figure:
                clear_output(wait=True)  # the old figure goes when the first new output arrives, not before
                if captured is not None:
                    if captured.stdout:
                        sys.stdout.write(captured.stdout)
                    if captured.stderr:
                        sys.stderr.write(captured.stderr)
                    for output in captured.outputs:
                        if WIDGET_VIEW not in output.data:
                            output.display()

    def redraw(change: dict) -> None:
        values = {name: slider.value for name, slider in sliders.items()}
        status.value = "drawing " + ", ".join(f"{name} = {value:g}" for name, value in values.items()) + " ..."
        try:
            draw(values)
        except Exception:  # a slider callback has no cell to fail: show the error where the figure was
            with figure:
                get_ipython().showtraceback()
        finally:
            status.value = ""

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    display(widgets.VBox([*sliders.values(), status, figure]))
    draw(defaults)


def _decimals(*values: float) -> int:
    """The decimals that show each of values exactly, up to 6 (a float slider's readout): 0.008 -> 3, 2.0 -> 1."""
    places = [len(f"{v:.6f}".rstrip("0").partition(".")[2]) for v in values]
    return max(1, *places)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with n torch intra-op threads; the previous number is restored afterwards, also on an error."""
    check_int("n", n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
