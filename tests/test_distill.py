"""Lecture 4: progressive distillation (Salimans & Ho 2022, Algorithm 2): the loss and target of distill.py, and the
stage that trains on it (machinery/distillation.py, on the one training loop).

References are written here from the equations, not taken from distill.py: the DDIM step (DDIM eq. 12 at eta = 0)
and, for Gaussian data, the exact eps (E[eps | x_t] = sigma_t Sigma_t^{-1} (x_t - sqrt(abar_t) m) with
Sigma_t = abar_t C + (1 - abar_t) I), under which two teacher steps are an affine map and so is the student that
matches them, in closed form.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ddpm_scratch.distill import distillation_loss, distillation_target, x0_target
from ddpm_scratch.forward import as_eps_model, eps_from_x0
from ddpm_scratch.machinery.distillation import distill_stage, progressive_distillation
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule, respaced
from ddpm_scratch.score import GaussianMixture, mixture_eps_model

F64 = torch.float64
MEAN = torch.tensor([0.5, -1.0], dtype=F64)
COV = torch.tensor([[0.30, 0.12], [0.12, 0.20]], dtype=F64)


def ddim_reference(schedule, x, t, t_prev, eps):
    """DDIM eq. 12 at eta = 0: sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps, x0_hat from eq. 9."""
    ab, ab_prev = schedule.alpha_bars[t].reshape(-1, 1), schedule.alpha_bars[t_prev].reshape(-1, 1)
    x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    return ab_prev.sqrt() * x0_hat + (1 - ab_prev).sqrt() * eps


class RandomTeacher(nn.Module):
    """A nonlinear eps-model of (x, t): a fixed random MLP (float64)."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2)).double()

    def forward(self, x, t):
        return self.net(torch.cat([x, t.to(x.dtype)[:, None] / 100], dim=1))


class AffineEps(nn.Module):
    """eps(x, t) = W_t x + c_t, one (W, c) per training step 0..T."""

    def __init__(self, W, c):
        super().__init__()
        self.W, self.c = nn.Parameter(W.clone()), nn.Parameter(c.clone())

    def forward(self, x, t):
        return torch.einsum("bij,bj->bi", self.W[t], x) + self.c[t]


def gaussian_eps(schedule):
    """The exact eps of N(MEAN, COV) at every step as an AffineEps (float64)."""
    ab = schedule.alpha_bars.reshape(-1, 1, 1)
    inverse = torch.linalg.inv(ab * COV + (1 - ab) * torch.eye(2, dtype=F64))
    W = (1 - ab).sqrt() * inverse
    return AffineEps(W, -(W @ (ab.sqrt() * MEAN[:, None])).squeeze(-1))


def ddim_affine(schedule, t, t_prev, W, c):
    """The DDIM step (eq. 12, eta = 0) with eps = W x + c as x -> a x + b (W x + c): returns (matrix, offset)."""
    ab, ab_prev = schedule.alpha_bars[t], schedule.alpha_bars[t_prev]
    a = (ab_prev / ab).sqrt()
    b = (1 - ab_prev).sqrt() - (ab_prev * (1 - ab) / ab).sqrt()
    return a * torch.eye(2, dtype=F64) + b * W, b * c


def exact_student(schedule, teacher, num_steps):
    """The AffineEps student whose one DDIM step k -> k-1 is the teacher's two steps 2k -> 2k-2, from the affine
    two-step map z'' = A z + a and x~ = (z'' - r z) / (alpha'' - r alpha), eps~ = (z - alpha x~) / sigma."""
    T = schedule.T
    big, small = respaced(schedule, num_steps, "uniform"), respaced(schedule, num_steps // 2, "uniform")
    W, c = teacher.W.detach().clone(), teacher.c.detach().clone()
    for k in range(1, num_steps // 2 + 1):
        i = 2 * k
        M1, o1 = ddim_affine(big, i, i - 1, W[big.timesteps[i]], c[big.timesteps[i]])
        M2, o2 = ddim_affine(big, i - 1, i - 2, W[big.timesteps[i - 1]], c[big.timesteps[i - 1]])
        A, a = M2 @ M1, M2 @ o1 + o2
        ab, ab2 = small.alpha_bars[k], small.alpha_bars[k - 1]
        r = ((1 - ab2) / (1 - ab)).sqrt()
        den = ab2.sqrt() - r * ab.sqrt()
        X, x_off = (A - r * torch.eye(2, dtype=F64)) / den, a / den  # x~ = X z + x_off
        s = small.timesteps[k]
        W[s] = (torch.eye(2, dtype=F64) - ab.sqrt() * X) / (1 - ab).sqrt()
        c[s] = -ab.sqrt() * x_off / (1 - ab).sqrt()
    assert T == schedule.T
    return AffineEps(W, c)


@given(num_steps=st.sampled_from([2, 4, 8, 10]), seed=st.integers(0, 10**6))
def test_one_student_step_with_the_target_lands_on_the_teachers_two_steps(num_steps, seed):
    schedule = NoiseSchedule.linear(100, rescale=True)
    teacher = RandomTeacher(seed % 7)
    big, small = respaced(schedule, num_steps, "uniform"), respaced(schedule, num_steps // 2, "uniform")
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(1, num_steps // 2 + 1, (16,), generator=g)
    x_t = 2 * torch.randn(16, 2, generator=g, dtype=F64)
    with torch.no_grad():  # reference: two DDIM steps of the teacher, written from eq. 12
        x_mid = ddim_reference(big, x_t, 2 * k, 2 * k - 1, teacher(x_t, big.timesteps[2 * k]))
        x_end = ddim_reference(big, x_mid, 2 * k - 1, 2 * k - 2, teacher(x_mid, big.timesteps[2 * k - 1]))
    x_tilde = distillation_target(teacher, big, x_t, 2 * k)
    eps_tilde = (x_t - small.alpha_bars[k].sqrt()[:, None] * x_tilde) / (1 - small.alpha_bars[k]).sqrt()[:, None]
    torch.testing.assert_close(ddim_reference(small, x_t, k, k - 1, eps_tilde), x_end, rtol=1e-9, atol=1e-9)


def test_x0_target_is_the_data_on_the_last_step_and_inverts_a_ddim_step():
    schedule = NoiseSchedule.cosine(50)
    g = torch.Generator().manual_seed(1)
    x_t, x_end = torch.randn(8, 2, generator=g, dtype=F64), torch.randn(8, 2, generator=g, dtype=F64)
    torch.testing.assert_close(x0_target(schedule, x_t, 30, 0, x_end=x_end), x_end)  # abar_0 = 1: x~ = z''
    x_tilde = x0_target(schedule, x_t, 40, 17, x_end=x_end)
    eps = eps_from_x0(schedule, x_t, 40, x0=x_tilde)
    torch.testing.assert_close(ddim_reference(schedule, x_t, torch.tensor([40]), torch.tensor([17]), eps), x_end)


def test_gaussian_teacher_is_the_exact_eps_of_one_component():
    schedule = NoiseSchedule.linear(40, rescale=True)
    exact = mixture_eps_model(GaussianMixture([1.0], MEAN[None], COV[None]), schedule)
    x, t = torch.randn(32, 2, dtype=F64), torch.randint(1, 41, (32,))
    torch.testing.assert_close(gaussian_eps(schedule)(x, t), exact(x, t))


@pytest.mark.parametrize("num_steps", [4, 8])
def test_exact_linear_student_has_zero_loss_and_samples_like_the_teacher(num_steps):
    schedule = NoiseSchedule.linear(40, rescale=True)
    teacher = gaussian_eps(schedule)
    student = exact_student(schedule, teacher, num_steps)
    x0 = GaussianMixture([1.0], MEAN[None], COV[None]).sample(256, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        loss = distillation_loss(student, teacher, schedule, x0, num_steps, generator=g)
        teacher_as_student = distillation_loss(teacher, teacher, schedule, x0, num_steps, generator=g)
    assert teacher_as_student > 1e-4  # one exact-eps DDIM step is not two: there is something to distil
    assert loss < 1e-20
    x_T = torch.randn(64, 2, dtype=F64, generator=g)
    with torch.no_grad():
        fast = sample(student, schedule, (64, 2), sampler="ddim", num_steps=num_steps // 2, x_T=x_T, dtype=F64)
        slow = sample(teacher, schedule, (64, 2), sampler="ddim", num_steps=num_steps, x_T=x_T, dtype=F64)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("num_steps", [2, 8])
def test_the_weightings_are_the_papers_losses(num_steps):
    """Salimans & Ho, sec. 4, with alpha = sqrt(abar), sigma = sqrt(1 - abar), eps~ = (z - alpha x~) / sigma (eq. 9)
    and v = alpha eps - sigma x: "snr_trunc" is max(||x~ - x_hat||^2, ||eps~ - eps_hat||^2), "snr+1" the squared
    error in v, "snr" the squared error in eps, each summed over coordinates and averaged over the batch. The
    generator draws the student's index k, then eps (distillation_loss's docstring); x~ is `distillation_target`,
    tested above against two DDIM steps written here."""
    schedule = NoiseSchedule.linear(40, rescale=True)
    teacher, student = RandomTeacher(0), RandomTeacher(1)
    x0 = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3)
    k = torch.randint(1, num_steps // 2 + 1, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    small = respaced(schedule, num_steps // 2)
    ab = small.alpha_bars[k].reshape(-1, 1)
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    z = alpha * x0 + sigma * eps
    with torch.no_grad():
        x_target = distillation_target(teacher, respaced(schedule, num_steps), z, 2 * k)
        eps_hat = student(z, small.timesteps[k])
    x_hat = (z - sigma * eps_hat) / alpha
    eps_target = (z - alpha * x_target) / sigma
    x_error = ((x_target - x_hat) ** 2).sum(1)
    eps_error = ((eps_target - eps_hat) ** 2).sum(1)
    v_error = ((alpha * (eps_target - eps_hat) - sigma * (x_target - x_hat)) ** 2).sum(1)
    assert (x_error < eps_error).any() and (x_error > eps_error).any() or num_steps == 2  # both branches of max
    expected = {"snr_trunc": torch.maximum(x_error, eps_error).mean(), "snr+1": v_error.mean(),
                "snr": eps_error.mean()}
    for weighting, value in expected.items():
        with torch.no_grad():
            loss = distillation_loss(student, teacher, schedule, x0, num_steps, weighting=weighting,
                                     generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(loss, value, rtol=1e-10, atol=0, msg=weighting)


def test_a_stage_drives_the_linear_students_loss_towards_zero():
    schedule = NoiseSchedule.linear(40, rescale=True)
    teacher = gaussian_eps(schedule)
    data = GaussianMixture([1.0], MEAN[None], COV[None]).sample(2048, torch.Generator().manual_seed(0))
    stage = distill_stage(teacher, schedule, data, 4, iterations=200, batch_size=128, lr=2e-2, ema_decay=0.9)
    x0 = data[:512]
    with torch.no_grad():
        before = distillation_loss(teacher, teacher, schedule, x0, 4, generator=torch.Generator().manual_seed(5))
        after = distillation_loss(stage.student, teacher, schedule, x0, 4, generator=torch.Generator().manual_seed(5))
    assert (stage.num_steps, stage.teacher_steps) == (2, 4)
    # an exact affine student exists (loss 0, the test above); 200 Adam steps reach ~1e-3 of the start here
    # (float64, fixed seeds), 10x inside the bound; the untrained copy of the teacher stays at `before`
    assert after < 0.01 * before, (float(before), float(after))


def gaussian_network(schedule, prediction):
    """The exact model of N(MEAN, COV) as a network that outputs `prediction`, still affine per step: with
    a = sqrt(abar), s = sqrt(1 - abar) and eps = W x + c, x0 = (x - s eps) / a and v = a eps - s x0."""
    eps = gaussian_eps(schedule)
    W, c = eps.W.detach(), eps.c.detach()
    ab = schedule.alpha_bars
    a, s = ab.sqrt().reshape(-1, 1, 1), (1 - ab).sqrt().reshape(-1, 1, 1)
    eye = torch.eye(2, dtype=F64)
    W0, c0 = (eye - s * W) / a, -s[:, :, 0] * c / a[:, :, 0]
    if prediction == "x0":
        return AffineEps(W0, c0)
    return AffineEps(a * W - s * W0, a[:, :, 0] * c - s[:, :, 0] * c0)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_a_stage_on_an_x0_or_v_teacher_trains_a_student_in_the_same_parameterisation(prediction):
    """distill_stage takes the teacher network and what it outputs: the student starts as its copy, outputs the same
    quantity, and its loss (the student read as `prediction`, the teacher adapted to eps) falls as for eps."""
    schedule = NoiseSchedule.linear(40, rescale=True)
    teacher = gaussian_network(schedule, prediction)
    teacher_eps = as_eps_model(teacher, schedule, prediction=prediction)
    x, t = torch.randn(16, 2, dtype=F64), torch.randint(1, 41, (16,))
    with torch.no_grad():
        torch.testing.assert_close(teacher_eps(x, t), gaussian_eps(schedule)(x, t))  # the same model, adapted
    data = GaussianMixture([1.0], MEAN[None], COV[None]).sample(2048, torch.Generator().manual_seed(0))
    stage = distill_stage(teacher, schedule, data, 4, prediction=prediction, iterations=200, batch_size=128,
                          lr=2e-2, ema_decay=0.9)
    assert isinstance(stage.student, AffineEps)
    x0 = data[:512]
    with torch.no_grad():
        before, after = (distillation_loss(student, teacher_eps, schedule, x0, 4, prediction=prediction,
                                           generator=torch.Generator().manual_seed(5)) for student in (teacher,
                                                                                                        stage.student))
    assert after < 0.01 * before, (float(before), float(after))


def test_progressive_distillation_halves_the_steps_and_leaves_the_teacher_alone():
    schedule = NoiseSchedule.linear(64, rescale=True)
    teacher = gaussian_eps(schedule)
    before = [p.detach().clone() for p in teacher.parameters()]
    data = GaussianMixture([1.0], MEAN[None], COV[None]).sample(256, torch.Generator().manual_seed(0))
    seen = []
    stages = progressive_distillation(teacher, schedule, data, 16, min_steps=2, callback=seen.append,
                                      iterations=3, batch_size=16)
    assert [(s.teacher_steps, s.num_steps) for s in stages] == [(16, 8), (8, 4), (4, 2)]
    assert seen == stages
    assert all(torch.equal(p, q) for p, q in zip(before, teacher.parameters(), strict=True))
    assert len({id(s.student) for s in stages} | {id(teacher)}) == 4
    x = sample(stages[-1].student, schedule, (8, 2), sampler="ddim", num_steps=2, dtype=F64)
    assert x.shape == (8, 2) and torch.isfinite(x).all()


def test_bad_arguments_name_themselves():
    schedule = NoiseSchedule.linear(40, rescale=True)
    teacher = gaussian_eps(schedule)
    data = torch.randn(32, 2, dtype=F64)
    for kwargs, name in [(dict(num_steps=5), "num_steps"), (dict(num_steps=80), "num_steps"),
                         (dict(num_steps=4, spacing="quadratic"), "spacing"), (dict(num_steps=4, weighting="l1"),
                                                                                "weighting"),
                         (dict(num_steps=4, prediction="score"), "prediction"), (dict(num_steps=4, iterations=0),
                                                                                 "iterations"),
                         (dict(num_steps=4, lr=0.0), "lr"), (dict(num_steps=4, max_grad_norm=-1.0), "max_grad_norm"),
                         (dict(num_steps=4, weight_decay=-0.1), "weight_decay")]:
        with pytest.raises(ValueError, match=name):
            distill_stage(teacher, schedule, data, **kwargs)
    with pytest.raises(ValueError, match="min_steps"):
        progressive_distillation(teacher, schedule, data, 12, min_steps=4)
    with pytest.raises(TypeError, match="data"):
        distill_stage(teacher, schedule, [1.0, 2.0], 4)
