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


@pytest.fixture
def fake_widgets(monkeypatch):
    """A stand-in ipywidgets that records what would be built, and an IPython whose shell looks like a kernel that
    JupyterLab started: with DDPM_SCRATCH_WIDGETS unset this is a live frontend."""
    built = []

    class Slider:
        def __init__(self, **kwargs):
            built.append((type(self).__name__, kwargs))

    class IntSlider(Slider):
        pass

    class FloatSlider(Slider):
        pass

    def interact(plot, **sliders):
        built.append(("interact", sliders))

    widgets = types.ModuleType("ipywidgets")
    widgets.IntSlider, widgets.FloatSlider, widgets.interact = IntSlider, FloatSlider, interact
    shell_type = type("ZMQInteractiveShell", (), {"user_ns": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell_type()
    monkeypatch.setitem(sys.modules, "ipywidgets", widgets)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setenv("JPY_SESSION_NAME", "lesson.ipynb")
    monkeypatch.delenv("DDPM_SCRATCH_WIDGETS", raising=False)
    monkeypatch.delenv("DDPM_SCRATCH_FAST", raising=False)
    return built


def recorder():
    calls = []
    return calls, lambda **kwargs: calls.append(kwargs)


def test_headless_explore_draws_the_defaults_once_and_builds_no_widget(monkeypatch):
    monkeypatch.delenv("DDPM_SCRATCH_WIDGETS", raising=False)
    widgets = types.ModuleType("ipywidgets")  # importing or using it would fail on the missing attributes
    monkeypatch.setitem(sys.modules, "ipywidgets", widgets)
    assert not live_frontend()  # pytest is no notebook kernel
    calls, plot = recorder()
    explore(plot, t=(100, 0, 1000, 1), c=(1.0, 0.0, 2.0, 0.1))
    assert calls == [{"t": 100, "c": 1.0}]


def test_the_fake_frontend_is_live_and_gets_one_slider_per_control(fake_widgets):
    """The fixture really makes a live frontend, so the tests that switch it off below can fail."""
    assert live_frontend()
    calls, plot = recorder()
    explore(plot, t=(100, 0, 1000, 1), c=(1.0, 0.0, 2.0, 0.1))
    assert calls == []  # interact draws it, not explore
    kinds = {kwargs["description"]: kind for kind, kwargs in fake_widgets if kind != "interact"}
    assert kinds == {"t": "IntSlider", "c": "FloatSlider"}
    assert fake_widgets[-1][0] == "interact" and set(fake_widgets[-1][1]) == {"t", "c"}


@pytest.mark.parametrize("variable", ["DDPM_SCRATCH_WIDGETS=0", "DDPM_SCRATCH_FAST=1"])
def test_environment_forces_headless(fake_widgets, monkeypatch, variable):
    name, value = variable.split("=")
    monkeypatch.setenv(name, value)
    assert not live_frontend()
    calls, plot = recorder()
    explore(plot, t=(7, 0, 10, 1))
    assert calls == [{"t": 7}] and fake_widgets == []


def test_widgets_variable_turns_sliders_on_in_any_kernel(fake_widgets, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert not live_frontend()  # a kernel that no known frontend started
    monkeypatch.setenv("DDPM_SCRATCH_WIDGETS", "1")
    assert live_frontend()


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
