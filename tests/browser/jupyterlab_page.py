"""Helpers of the browser test: a JupyterLab server on a free localhost port with a token, Debian's Chromium driven by
Playwright's Python package, and what a student does on a notebook page (open it, Run All, save it, drag a slider).

Nothing here downloads a browser: Playwright is pointed at an installed Chromium (`chromium_path()`), which
`make test` installs with apt-get where it is missing (see the Makefile's `chromium` target).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_ENV = "DDPM_SCRATCH_CHROMIUM"  # a Chromium or Chrome binary to use instead of Debian's /usr/bin/chromium
# As root on a machine with no network but the package registries: no sandbox (root), no GPU, and none of Chromium's
# own connections (updates, sync, field trials), which the closed network would refuse at every start.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT = 180  # seconds; JupyterLab starts in 2-10 s on two busy cores: this only guards against a hang
WIDGET_ERROR = "Error displaying widget"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show (selectors below are scoped to it)

# JupyterLab's settings for the test: every cell in the page (no windowing, so that each cell's outputs can be read),
# no news or update checks (the network is closed).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


def chromium_path() -> str:
    """The Chromium to drive: $DDPM_SCRATCH_CHROMIUM, else chromium or chromium-browser on PATH; fails, naming what
    to install, when there is none (the test must not pass without having run)."""
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen:
        if not Path(chosen).is_file():
            pytest.fail(f"{CHROMIUM_ENV}={chosen} is not a file")
        return chosen
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("the browser test needs Chromium: install Debian's package `chromium` (apt-get install chromium; "
                f"`make test` does it as root) or set {CHROMIUM_ENV} to a Chromium or Chrome binary")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: its base url, token, root folder, process and log."""
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def shut_down_kernels(self) -> None:
        """End every session (and so its kernel): the next lesson starts on an idle machine."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")


def start_lab(root: Path, home: Path, env: dict[str, str]) -> Lab:
    """JupyterLab serving root, on 127.0.0.1 at a free port with a random token; its kernels get env on top of this
    process's environment. Its configuration, settings, workspaces and runtime files live in home."""
    for name, content in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    full_env = {**os.environ, **env,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                "IPYTHONDIR": str(home / "ipython")}
    port, token = free_port(), os.urandom(16).hex()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "jupyterlab.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(command, cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode} at start:\n{lab.log_tail()}")
        try:
            lab.api("GET", "status")
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                stop_lab(lab)
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n{lab.log_tail()}")
            time.sleep(0.5)


def stop_lab(lab: Lab) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    if lab.process.poll() is None:
        try:
            os.killpg(lab.process.pid, signal.SIGTERM)
            lab.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(timeout=30)
        except ProcessLookupError:
            pass


class NotebookPage:
    """A notebook opened in JupyterLab, and what a student does with it."""

    def __init__(self, page, lab: Lab, path: str):
        self.page, self.lab, self.path = page, lab, path

    def open(self, timeout: float) -> None:
        # reset: a new workspace, so that only this notebook opens (not the tabs of the lesson before)
        self.page.goto(f"{self.lab.url}/lab/tree/{self.path}?reset&token={self.lab.token}")
        self.page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=timeout * 1000)
        # the kernel has started and the page is connected to it: the server says idle, and so does the status bar
        deadline = time.monotonic() + timeout
        while not any(s["path"] == self.path and s["kernel"]["execution_state"] == "idle"
                      for s in self.lab.api("GET", "sessions")):
            if time.monotonic() > deadline:
                sessions = self.lab.api("GET", "sessions")
                raise AssertionError(f"{self.path}: no idle kernel after {timeout:.0f} s; sessions: {sessions}")
            time.sleep(0.5)
        self.page.get_by_text("| Idle").first.wait_for(timeout=max(deadline - time.monotonic(), 1) * 1000)

    def menu(self, top: str, item: str) -> None:
        """Click top in the menu bar, then item in its menu."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text=item).first.click()

    def prompts(self) -> list[str]:
        return self.page.eval_on_selector_all(f"{PANEL} .jp-CodeCell .jp-InputPrompt",
                                              "els => els.map(e => e.textContent.trim())")

    def run_all(self, timeout: float) -> float:
        """Run > Run All Cells, then wait until no cell is running or queued; returns the seconds it took."""
        start = time.monotonic()
        self.menu("Run", "Run All Cells")
        started = quiet = 0
        while not started or quiet < 3:  # it has started, then three polls in a row with nothing queued, kernel idle
            time.sleep(1)
            prompts = self.prompts()
            started = started or any(p not in ("[ ]:", "") for p in prompts)
            idle = self.page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']").count()
            quiet = quiet + 1 if idle and not any("*" in p for p in prompts) else 0
            if not started and time.monotonic() - start > 60:
                raise AssertionError(f"{self.path}: Run All Cells started no cell in 60 s; prompts {prompts}")
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{self.path}: still running after {timeout:.0f} s; prompts {prompts}")
        return time.monotonic() - start - 3

    def save(self, timeout: float) -> None:
        """File > Save Notebook, then wait until the tab no longer shows unsaved changes."""
        self.menu("File", "Save Notebook")
        self.page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')",
                                    timeout=timeout * 1000)

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def markdown_cells_without_math(self, sources: list[str]) -> list[int]:
        """Indices (among the markdown cells) of cells whose source has $...$ but whose rendering has no MathJax."""
        rendered = self.page.eval_on_selector_all(
            f"{PANEL} .jp-MarkdownCell", "els => els.map(e => e.querySelectorAll('mjx-container').length)")
        assert len(rendered) == len(sources), f"{len(rendered)} markdown cells on the page, {len(sources)} in the file"
        return [i for i, (src, n) in enumerate(zip(sources, rendered, strict=True)) if "$" in src and n == 0]

    def broken_images(self) -> int:
        return self.page.eval_on_selector_all(
            f"{PANEL} .jp-OutputArea img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).length")

    def static_images(self) -> int:
        """Images in cell outputs outside widgets (those the saved notebook holds)."""
        return self.page.eval_on_selector_all(
            f"{PANEL} .jp-OutputArea img", "els => els.filter(e => !e.closest('.widget-output')).length")

    def sliders(self):
        return self.page.locator(f"{PANEL} .widget-slider")


@dataclass
class Move:
    """What one slider move did."""
    name: str
    before: str
    after: str
    seconds: float  # from the release of the mouse to the new figure
    vanished: float  # seconds during which the cell showed no figure
    changed: bool


def figure_sources(cell) -> list[str]:
    """The src of each image inside the widget outputs of a cell (the figure an explorer draws)."""
    return cell.locator(".widget-output img").evaluate_all("els => els.map(e => e.getAttribute('src'))")


def readout(slider) -> tuple[str, str]:
    """(the text the slider's readout shows, the value it holds: aria-valuetext of its handle)."""
    return (slider.locator(".widget-readout").inner_text().strip(),
            slider.locator(".noUi-handle").get_attribute("aria-valuetext"))


def drag(page, slider) -> None:
    """Drag the slider's handle a quarter of its track away from where it is, towards the far side, as a mouse does."""
    slider.scroll_into_view_if_needed()
    handle, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-target").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    at = (x - track["x"]) / track["width"]
    target = track["x"] + track["width"] * (at - 0.3 if at > 0.5 else at + 0.3)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(target, y, steps=10)
    page.mouse.up()


def move_slider(page, slider, timeout: float) -> Move:
    """Drag slider, then watch its cell until its figure is a new one (or timeout): every 0.1 s it records whether
    the cell shows a figure at all, and whether a widget reads "Error displaying widget"."""
    cell = slider.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' jp-Cell ')][1]")
    name = slider.locator(".widget-label").inner_text().strip()
    before = figure_sources(cell)
    value_before = readout(slider)[1]
    drag(page, slider)
    start, vanished, last = time.monotonic(), 0.0, time.monotonic()
    while readout(slider)[1] == value_before and time.monotonic() - start < 10:  # the drag reaches the widget at once
        time.sleep(0.1)
    if readout(slider)[1] == value_before:
        return Move(name, value_before, value_before, time.monotonic() - start, 0.0, False)
    while True:
        now = time.monotonic()
        sources = figure_sources(cell)
        if not sources:
            vanished += now - last
        last = now
        if sources and sources != before:
            break
        if page.get_by_text(WIDGET_ERROR).count() or now - start > timeout:
            break
        time.sleep(0.1)
    return Move(name, value_before, readout(slider)[1], time.monotonic() - start, vanished,
                bool(sources) and sources != before)
