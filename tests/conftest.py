"""Shared test configuration: a fast hypothesis profile for CI, a thorough one on request."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores on CI; keep torch from oversubscribing them when pytest-xdist runs two workers.
torch.set_num_threads(1)


# The course tests record their times (lessons in fast mode, grading) as user properties; print them at the end of
# the run, with the machine's load, since they are reported rather than asserted. (Here rather than in
# tests/course/conftest.py: under pytest-xdist only the root conftest runs in the controller.)
_LOAD_AT_START: list[tuple[float, float, float]] = []


def pytest_sessionstart(session):
    _LOAD_AT_START.append(os.getloadavg())


def pytest_terminal_summary(terminalreporter):
    """Print the times the course tests record (user properties travel back from xdist workers)."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for key, value in getattr(report, "user_properties", []):
                if key == "course_timing":
                    lines.append(value)
    if lines:
        terminalreporter.write_sep("-", "course grading times")  # reported, not asserted
        for line in sorted(set(lines)):
            terminalreporter.write_line(line)
        start = " at the start {:.1f}/{:.1f}/{:.1f},".format(*_LOAD_AT_START[0]) if _LOAD_AT_START else ""
        terminalreporter.write_line("load average (1/5/15 min):{} at the end {:.1f}/{:.1f}/{:.1f}; {} cores".format(
            start, *os.getloadavg(), os.cpu_count()))
