"""Shared test configuration: a fast hypothesis profile for CI, a thorough one on request."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores on CI; keep torch from oversubscribing them when pytest-xdist runs two workers.
torch.set_num_threads(1)


# The course pipeline tests record grading times as user properties; print them at the end of the run.
# (Here rather than in tests/course/conftest.py: under pytest-xdist only the root conftest runs in the controller.)
def pytest_terminal_summary(terminalreporter):
    """Print the grading times the pipeline tests record (user properties travel back from xdist workers)."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for key, value in getattr(report, "user_properties", []):
                if key == "course_timing":
                    lines.append(value)
    if lines:
        terminalreporter.write_sep("-", "course grading times")
        for line in sorted(set(lines)):
            terminalreporter.write_line(line)
