"""reverse_steps.py: what every sampler shares: x_T, the entry checks, the model at the training steps, the hook."""

import pytest
import torch

from ddpm_scratch.reverse_steps import after_step, check_run, eps_at, initial_noise, reverse_indices, training_steps
from ddpm_scratch.schedules import NoiseSchedule

BASE = NoiseSchedule.linear(T=100, rescale=True)
RESPACED = BASE.respace([10, 40, 70, 100])  # index i stands for training step [0, 10, 40, 70, 100][i]


def recording_model():
    calls = []

    def model(x_t, t):
        calls.append(t)
        return x_t * t[:, None].to(x_t.dtype)  # an output that shows which t each row got

    return model, calls


def test_eps_at_calls_the_model_at_the_training_step_of_an_int_index():
    """An int index: every row at schedule.timesteps[i], as a (B,) LongTensor; the model's output is returned."""
    model, calls = recording_model()
    x = torch.ones(3, 2)
    for i, step in ((1, 10), (3, 70), (4, 100)):
        out = eps_at(model, RESPACED, x, i)
        assert calls[-1].shape == (3,) and calls[-1].dtype == torch.long and calls[-1].tolist() == [step] * 3
        assert torch.equal(out, torch.full((3, 2), float(step)))
    eps_at(model, BASE, x, 37)  # not respaced: index = training step
    assert calls[-1].tolist() == [37] * 3


def test_eps_at_calls_the_model_at_the_training_steps_of_a_tensor_of_indices():
    """A (B,) tensor of indices: row b at timesteps[i_b]."""
    model, calls = recording_model()
    out = eps_at(model, RESPACED, torch.ones(4, 2), torch.tensor([4, 1, 2, 4]))
    assert calls[-1].dtype == torch.long and calls[-1].tolist() == [100, 10, 40, 100]
    assert out[:, 0].tolist() == [100.0, 10.0, 40.0, 100.0]


def test_training_steps_and_reverse_indices():
    assert training_steps(RESPACED) == [0, 10, 40, 70, 100] and all(isinstance(t, int) for t in training_steps(BASE))
    assert list(reverse_indices(RESPACED)) == [4, 3, 2, 1]
    assert list(reverse_indices(RESPACED, progress=True, desc="test")) == [4, 3, 2, 1]


def test_after_step_replaces_x_by_the_hooks_output_and_checks_its_shape():
    x = torch.randn(3, 2)
    assert after_step(None, x, 5) is x
    seen = []
    out = after_step(lambda x, t: seen.append(t) or 2 * x, x, 5)
    assert seen == [5] and torch.equal(out, 2 * x)
    with pytest.raises(ValueError, match=r"hook\(x, t\) must return a tensor of x's shape \(3, 2\), got \(2, 3\) "
                                         r"at t = 7"):
        after_step(lambda x, t: x.T, x, 7)
    with pytest.raises(ValueError, match=r"must return a tensor of x's shape \(3, 2\), got list at t = 0"):
        after_step(lambda x, t: x.tolist(), x, 0)


def test_check_run_names_each_bad_argument():
    x_T, model = torch.zeros(3, 2), (lambda x, t: x)
    assert check_run(model, BASE, x_T, None) is None
    assert check_run(model, BASE, x_T, lambda x, t: x) is None
    with pytest.raises(TypeError, match="eps_model must be callable as eps_model\\(x_t, t\\), got str"):
        check_run("unet", BASE, x_T, None)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule, got str"):
        check_run(model, "linear", x_T, None)
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor, got list"):
        check_run(model, BASE, [[0.0, 0.0]], None)
    with pytest.raises(ValueError, match="x_T must be a floating tensor"):
        check_run(model, BASE, torch.zeros(3, 2, dtype=torch.long), None)
    with pytest.raises(ValueError, match="x_T must have shape \\(B, ...\\) with at least 2 dimensions, got \\(2,\\)"):
        check_run(model, BASE, torch.zeros(2), None)
    with pytest.raises(TypeError, match="hook must be None or callable as hook\\(x, t\\) -> x, got int"):
        check_run(model, BASE, x_T, 3)


def test_initial_noise_draws_n_0_i_or_checks_the_callers_x_T():
    """Algorithm 2, line 1: torch.randn of the shape, from the generator, in the dtype; a given x_T is returned as
    it is after its checks (shape, floating)."""
    x = initial_noise((4, 1, 2, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert x.dtype == torch.float64 and torch.equal(x, torch.randn(4, 1, 2, 2, generator=torch.Generator()
                                                                   .manual_seed(3), dtype=torch.float64))
    x_T = torch.randn(4, 2)
    assert initial_noise((4, 2), x_T=x_T) is x_T
    with pytest.raises(ValueError, match=r"x_T has shape \(3, 2\), expected \(4, 2\)"):
        initial_noise((4, 2), x_T=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="x_T must be a floating tensor"):
        initial_noise((4, 2), x_T=torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor"):
        initial_noise((4, 2), x_T=[[0.0, 0.0]] * 4)
    for shape in ((0, 3), (3,), (2, -1), ()):
        with pytest.raises(ValueError, match=r"shape must be \(B, ...\) with positive sizes"):
            initial_noise(shape)
