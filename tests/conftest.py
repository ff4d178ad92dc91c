"""Shared test configuration: a fast hypothesis profile for CI, a thorough one on request."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores on CI; keep torch from oversubscribing them when pytest-xdist runs two workers.
torch.set_num_threads(1)
