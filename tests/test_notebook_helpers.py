"""The lessons' shared helpers (ddpm_scratch.machinery.notebook): sliders that fall back to one static figure,
scoped torch threads, and the output folder that does not depend on where the notebook was started."""

from __future__ import annotations

import sys
import types

import matplotlib
import pytest
import torch

from ddpm_scratch.machinery import notebook
from ddpm_scratch.machinery.notebook import explore, lesson_output_dir, live_frontend, show, torch_threads

matplotlib.use("Agg")


class Slider:
    """A stand-in slider: its constructor's arguments, and a value whose change calls the observers, as a drag does."""

    def __init__(self, **kwargs):
        self.kwargs, self.value, self.observers = kwargs, kwargs["value"], []

    def observe(self, callback, names):
        assert names == "value"
        self.observers.append(callback)

    def drag_to(self, value):
        old, self.value = self.value, value
        for callback in self.observers:
            callback({"name": "value", "old": old, "new": value})


class IntSlider(Slider):
    pass


class FloatSlider(Slider):
    pass


class Label:
    def __init__(self, value=""):
        self.value = value


class Output:
    """The figure's place: entering it routes what is displayed there (here: to the shell's publisher, which notes
    whether an Output was entered when something was shown or cleared)."""

    entered = 0  # times entered (reset by the fixture)
    depth = 0  # Outputs entered now

    def __enter__(self):
        Output.entered += 1
        Output.depth += 1
        return self

    def __exit__(self, *exc):
        Output.depth -= 1
        return None


class VBox:
    def __init__(self, children):
        self.children = children


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    """A kernel as JupyterLab starts one, with a stand-in ipywidgets: an IPython shell whose type is named like
    ipykernel's (so live_frontend() is True with DDPM_SCRATCH_WIDGETS unset), whose display publisher records what
    the frontend would show (clear_output empties it), and JPY_SESSION_NAME set. Yields (shell, shown, built):
    shown is the list of displayed outputs, built the widgets explore made."""
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    built = []

    def record(cls):
        return type(cls.__name__, (cls,), {"__init__": lambda self, *a, **k: (cls.__init__(self, *a, **k),
                                                                             built.append(self))[0]})

    widgets = types.ModuleType("ipywidgets")
    widgets.IntSlider, widgets.FloatSlider, widgets.Label, widgets.Output, widgets.VBox = map(
        record, (IntSlider, FloatSlider, Label, Output, VBox))
    monkeypatch.setitem(sys.modules, "ipywidgets", widgets)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JPY_SESSION_NAME", "lesson.ipynb")
    monkeypatch.delenv("DDPM_SCRATCH_WIDGETS", raising=False)
    monkeypatch.delenv("DDPM_SCRATCH_FAST", raising=False)
    for hook in ("displayhook", "excepthook"):  # the shell replaces them; monkeypatch puts them back
        monkeypatch.setattr(sys, hook, getattr(sys, hook))
    assert not InteractiveShell.initialized(), "another IPython shell is running in this process"
    shell_type = type("ZMQInteractiveShell", (InteractiveShell,), {})
    shell = shell_type.instance(config=Config({"HistoryManager": {"enabled": False}}))
    class Publisher(CapturingDisplayPublisher):
        """Notes, for each output and each clear_output, whether it went to an Output, and each clear's wait."""

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
            super().publish(data, metadata, source, transient=transient, update=update)
            self.outputs[-1]["in_output"] = Output.depth > 0

        def clear_output(self, wait=False):
            self.clears.append((wait, Output.depth > 0))
            super().clear_output(wait)

    Output.entered = Output.depth = 0
    shell.display_pub = Publisher()
    shell.display_pub.clears = []
    try:
        yield shell, shell.display_pub.outputs, built
    finally:
        shell_type.clear_instance()


def recorder():
    calls = []
    return calls, lambda **kwargs: calls.append(kwargs)


def png(text):
    """A displayed figure (a stand-in for the PNG that show() makes)."""
    from IPython.display import display

    display({"image/png": text, "text/plain": "<Figure>"}, raw=True)


def progress_bar():
    """What tqdm.auto displays in a notebook: a widget view (closed again when the bar ends)."""
    from IPython.display import display

    display({notebook.WIDGET_VIEW: {"model_id": "bar", "version_major": 2, "version_minor": 0},
             "text/plain": "progress"}, raw=True)


def figures(shown):
    return [out["data"]["image/png"] for out in shown if "image/png" in out["data"]]


def test_headless_explore_draws_the_defaults_once_and_builds_no_widget(monkeypatch):
    monkeypatch.delenv("DDPM_SCRATCH_WIDGETS", raising=False)
    widgets = types.ModuleType("ipywidgets")  # importing or using it would fail on the missing attributes
    monkeypatch.setitem(sys.modules, "ipywidgets", widgets)
    assert not live_frontend()  # pytest is no notebook kernel
    calls, plot = recorder()
    explore(plot, t=(100, 0, 1000, 1), c=(1.0, 0.0, 2.0, 0.1))
    assert calls == [{"t": 100, "c": 1.0}]


def test_the_kernel_is_a_live_frontend_and_gets_one_slider_per_control(kernel):
    """The fixture really makes a live frontend, so the tests that switch it off below can fail."""
    shell, shown, built = kernel
    assert live_frontend()
    calls, plot = recorder()
    explore(plot, t=(100, 0, 1000, 1), c=(1.0, 0.0, 2.0, 0.1), s=(0.008, 0.0, 0.2, 0.002))
    assert calls == [{"t": 100, "c": 1.0, "s": 0.008}]  # the first draw, with the defaults
    sliders = {w.kwargs["description"]: w for w in built if isinstance(w, Slider)}
    assert {name: type(w).__name__ for name, w in sliders.items()} == \
        {"t": "IntSlider", "c": "FloatSlider", "s": "FloatSlider"}
    assert all(w.kwargs["continuous_update"] is False for w in sliders.values())  # redraw on release only
    # a float slider's readout shows every decimal of its control (ipywidgets' default .2f shows 0.008 as 0.01)
    assert sliders["c"].kwargs["readout_format"] == ".1f" and sliders["s"].kwargs["readout_format"] == ".3f"
    sliders["s"].drag_to(0.01)
    assert calls[-1] == {"t": 100, "c": 1.0, "s": 0.01}


@pytest.mark.parametrize("variable", ["DDPM_SCRATCH_WIDGETS=0", "DDPM_SCRATCH_FAST=1"])
def test_environment_forces_headless(kernel, monkeypatch, variable):
    shell, shown, built = kernel
    name, value = variable.split("=")
    monkeypatch.setenv(name, value)
    assert not live_frontend()
    calls, plot = recorder()
    explore(plot, t=(7, 0, 10, 1))
    assert calls == [{"t": 7}] and built == []


def test_widgets_variable_turns_sliders_on_in_any_kernel_and_in_fast_mode(kernel, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert not live_frontend()  # a kernel that no known frontend started
    monkeypatch.setenv("DDPM_SCRATCH_WIDGETS", "1")
    assert live_frontend()
    monkeypatch.setenv("DDPM_SCRATCH_FAST", "1")  # the browser test: the fast lessons, with their sliders
    assert live_frontend()


def test_a_redraw_keeps_the_old_figure_until_the_new_one_is_complete_and_shows_no_progress_bar(kernel, capsys):
    """Lesson 02's sigma^2 explorer drew a tqdm bar inside its callback: interact cleared the figure when the bar
    appeared (the figure vanished while sampling) and the closed bar then read "Error displaying widget"."""
    shell, shown, built = kernel
    seen_while_drawing = []

    def plot(c):
        label = next(w for w in built if isinstance(w, Label))
        seen_while_drawing.append((list(figures(shown)), label.value))
        progress_bar()
        print(f"sampled with c = {c}")
        png(f"figure c={c}")

    explore(plot, c=(1.0, 0.0, 2.0, 0.1))
    status = next(w for w in built if isinstance(w, Label))
    slider = next(w for w in built if isinstance(w, Slider))
    assert figures(shown) == ["figure c=1.0"]
    assert not any(notebook.WIDGET_VIEW in out["data"] for out in shown), "the progress bar was shown"
    assert "sampled with c = 1.0" in capsys.readouterr().out
    slider.drag_to(0.4)
    assert seen_while_drawing[-1] == (["figure c=1.0"], "drawing c = 0.4 ...")  # the old figure stays meanwhile
    assert figures(shown) == ["figure c=0.4"] and status.value == ""
    assert not any(notebook.WIDGET_VIEW in out["data"] for out in shown), "the progress bar was shown"
    assert "sampled with c = 0.4" in capsys.readouterr().out
    assert Output.entered >= 2 and all(out["in_output"] for out in shown)  # both draws went to the figure's place
    # each draw replaced the figure inside its place, and only once the new output was there (wait=True)
    assert shell.display_pub.clears and all(wait and inside for wait, inside in shell.display_pub.clears), \
        shell.display_pub.clears


def test_an_error_in_the_first_draw_is_the_cells_and_in_a_redraw_shows_in_place_of_the_figure(kernel, capsys):
    shell, shown, built = kernel

    def plot(c):
        png(f"figure c={c}")
        if c > 1.5:
            raise RuntimeError(f"no samples for c = {c}")

    with pytest.raises(RuntimeError, match="c = 1.9"):
        explore(plot, c=(1.9, 0.0, 2.0, 0.1))
    built.clear()
    explore(plot, c=(1.0, 0.0, 2.0, 0.1))
    slider = next(w for w in built if isinstance(w, Slider))
    status = next(w for w in built if isinstance(w, Label))
    capsys.readouterr()
    slider.drag_to(1.8)  # the callback does not raise: the traceback takes the figure's place
    assert figures(shown) == ["figure c=1.8"]  # what plot drew before it failed
    assert "RuntimeError" in capsys.readouterr().out and status.value == ""
    slider.drag_to(0.5)  # and the next move draws again
    assert figures(shown) == ["figure c=0.5"]


def test_explore_rejects_a_malformed_control():
    with pytest.raises(ValueError, match="control t"):
        explore(lambda t: None, t=(1, 0, 2))


def test_torch_threads_restores_the_previous_count_even_when_the_block_raises():
    before = torch.get_num_threads()
    inside = 2 if before == 1 else 1
    with torch_threads(inside):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(inside):
        assert torch.get_num_threads() == inside
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("n", [0, 1.5, True])
def test_torch_threads_names_a_bad_count(n):
    with pytest.raises((TypeError, ValueError), match="n must"):
        with torch_threads(n):
            pass


def course_folder(tmp_path, name="02_ddpm"):
    root = tmp_path / "course"
    (root / "lessons").mkdir(parents=True)
    (root / "lessons" / f"{name}.ipynb").write_text("{}")
    return root


def test_output_dir_is_the_course_folders_outputs_from_the_course_or_from_lessons(tmp_path, monkeypatch):
    root = course_folder(tmp_path)
    for start in (root, root / "lessons"):
        assert lesson_output_dir("02_ddpm", start) == root.resolve() / "outputs" / "02_ddpm"
        monkeypatch.chdir(start)  # the default: the current working directory
        assert lesson_output_dir("02_ddpm") == root.resolve() / "outputs" / "02_ddpm"
    assert not (root / "outputs").exists(), "resolving the folder must not create it"


def test_output_dir_elsewhere_is_below_the_working_directory(tmp_path, monkeypatch):
    root = course_folder(tmp_path)
    elsewhere = tmp_path / "scratch"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert lesson_output_dir("02_ddpm") == elsewhere.resolve() / "outputs" / "02_ddpm"
    # a course folder that holds other lessons only is not this lesson's course
    assert lesson_output_dir("01_forward_process", root / "lessons") == \
        (root / "lessons").resolve() / "outputs" / "01_forward_process"


@pytest.mark.parametrize("name", ["", "lessons/02_ddpm", 2])
def test_output_dir_names_a_bad_lesson_name(name):
    with pytest.raises(ValueError, match="name must"):
        lesson_output_dir(name)


def test_show_saves_the_figure_and_displays_it(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "outputs" / "lesson" / "line.png"
    show(fig, path)
    plt.close(fig)
    assert path.read_bytes().startswith(b"\x89PNG") and shown == [True]


def test_the_module_documents_what_it_exports():
    assert set(notebook.__all__) == {"lesson_output_dir", "show", "live_frontend", "explore", "torch_threads"}
    assert all(getattr(notebook, name).__doc__ for name in notebook.__all__)
