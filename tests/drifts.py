"""Test helpers for lecture 3: the drifts of `sde.py` with a score function evaluated at (x, t), as a solver step
evaluates them (one home for the tests that need them: test_sde, test_score_solvers, test_likelihood)."""

from ddpm_scratch.sde import evaluate_score, probability_flow_drift, reverse_drift


def pf_drift(sde, score_fn, x, t):
    """The probability-flow drift (eq. 13) with score_fn evaluated at (x, t)."""
    return probability_flow_drift(sde, x, t, score=evaluate_score(score_fn, x, t)[0])


def rev_drift(sde, score_fn, x, t):
    """The reverse-SDE drift (eq. 6) with score_fn evaluated at (x, t)."""
    return reverse_drift(sde, x, t, score=evaluate_score(score_fn, x, t)[0])
