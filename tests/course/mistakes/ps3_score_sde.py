"""Plausible wrong submissions of ps3_score_sde, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The `copied_from_package_<cell>` entries are what a student who found the course package's function of that name
(or the nearest one) would hand in: the package's function called on the notebook's objects, as its docstring says
to call it, or its body copied. Each must lose its cell's points: the problem set asks for what the package does
not hold (the sub-VP SDE, a polynomial beta(t), a family of reverse-time SDEs, the flow from a denoiser, the
likelihood weighting of a noise-predicting network's loss).
"""

_MARGINAL = '''
def marginal(sde, t):
    """(m(t), sigma(t)) of the kernel."""
    t = torch.as_tensor(t)
    integral = sde.beta_integral(t)'''  # + the body

_REVERSE = '''
def reverse_drift(sde, x, t, *, score, kappa=1.0):
    """Drift of the reverse-time SDE with noise kappa g."""'''  # + the body

_FLOW = '''
def probability_flow_drift(sde, x, t, *, x0):
    """Probability-flow drift from a denoiser's output."""
    m, s = marginal(sde, t)
    m, s = per_example(m, x), per_example(s, x)
    g2 = per_example(sde.diffusion(t) ** 2, x)'''  # + the return line

_EM = '''
def em_step(sde, x, t, dt, *, score, z, kappa=1.0):
    """One Euler-Maruyama step of the reverse-time SDE with noise kappa g, from t to t - dt."""
    g = per_example(sde.diffusion(t), x)'''  # + the body

_TARGET = '''
def dsm_target(sde, x_t, t, *, x0):
    """grad_{x_t} log q(x_t | x0)."""
    m, s = marginal(sde, t)
    m, s = per_example(m, x_t), per_example(s, x_t)'''  # + the return line

_LOSS = '''
def dsm_loss(eps_model, sde, x0, t, *, eps):
    """Likelihood-weighted DSM loss of a noise-predicting network on a batch."""
    m, s = marginal(sde, t)
    m, s = per_example(m, x0), per_example(s, x0)
    x_t = m * x0 + s * eps
    t_batch = t if isinstance(t, Tensor) else torch.full((x0.shape[0],), t, dtype=x0.dtype)
    g2 = per_example(sde.diffusion(t) ** 2, x0)'''  # + the return line

MISTAKES = {
    # ------------------------------------------------------------------------------------------------ A: marginal
    "copied_from_package_marginal": {  # ddpm_scratch.sde.VPSDE.marginal: linear beta from beta(0) to beta(1), VP only
        "replace": {"marginal": '''
def marginal(sde, t):
    """The package's VP kernel, with the linear beta that joins beta(0) and beta(1)."""
    from ddpm_scratch.sde import VPSDE as PackageVPSDE

    return PackageVPSDE(beta_min=sde.coefs[0], beta_max=sde.beta(1.0)).marginal(t)
'''},
        "must_lose": ["marginal_tests", "pf_drift_tests", "dsm_target_tests", "dsm_loss_tests"],
    },
    "marginal_subvp_with_the_vp_kernel": {  # sigma = sqrt(1 - m^2) for both SDEs: the sub-VP's g ignored
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral)
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    "marginal_subvp_variance_as_std": {  # returns the sub-VP's variance (1 - e^-I)^2 where sigma is asked for
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral)
    if isinstance(sde, SubVPSDE):
        return m2.sqrt(), (1 - m2) ** 2
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
        "visible": True,
    },
    "marginal_subvp_variance_from_g_squared": {  # v = 1 - e^{-2I}: the bracket of g^2 taken for the variance
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral)
    if isinstance(sde, SubVPSDE):
        return m2.sqrt(), (1 - m2**2).sqrt()
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    "marginal_subvp_integration_constant": {  # e^I v = e^I + e^-I - 1 (the constant fitted to e^I v = 1 at t = 0)
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral)
    if isinstance(sde, SubVPSDE):
        return m2.sqrt(), (1 + m2**2 - m2).sqrt()
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    "marginal_mean_without_half": {  # m = exp(-int beta): that is alpha_bar, not its square root
        "replace": {"marginal": _MARGINAL + '''
    m = torch.exp(-integral)
    if isinstance(sde, SubVPSDE):
        return m, 1 - m**2
    return m, (1 - m**2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    "marginal_vp_std_as_variance": {  # the VP's sigma^2 = 1 - m^2 returned where sigma is asked for
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral)
    return m2.sqrt(), 1 - m2
'''},
        "must_lose": ["marginal_tests"],
        "visible": True,
    },
    "marginal_only_tensors": {  # torch.exp of a Python float: the part allows a float t
        "replace": {"marginal": '''
def marginal(sde, t):
    """(m(t), sigma(t)) of the kernel, for a tensor t."""
    m2 = torch.exp(-sde.beta_integral(t))
    if isinstance(sde, SubVPSDE):
        return m2.sqrt(), 1 - m2
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    "marginal_float64_always": {  # the result cast to float64: a float32 t must give float32 back
        "replace": {"marginal": _MARGINAL + '''
    m2 = torch.exp(-integral.double())
    if isinstance(sde, SubVPSDE):
        return m2.sqrt(), 1 - m2
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["marginal_tests"],
    },
    # ------------------------------------------------------------------------------------------- B: reverse_drift
    "copied_from_package_reverse_drift": {  # ddpm_scratch.sde.reverse_drift: Anderson's drift whatever kappa is
        "replace": {"reverse_drift": '''
def reverse_drift(sde, x, t, *, score, kappa=1.0):
    """The package's reverse drift, on the notebook's SDE (it has drift and diffusion)."""
    from ddpm_scratch.sde import reverse_drift as package_reverse_drift

    return package_reverse_drift(sde, x, t, score=score)
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
        "visible": True,
    },
    "reverse_drift_plus_score": {  # f + (1 + kappa^2)/2 g^2 score: the sign of the score term flipped
        "replace": {"reverse_drift": _REVERSE + '''
    return sde.drift(x, t) + 0.5 * (1 + kappa**2) * per_example(sde.diffusion(t) ** 2, x) * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
    },
    "reverse_drift_g_instead_of_g_squared": {  # f - (1 + kappa^2)/2 g score
        "replace": {"reverse_drift": _REVERSE + '''
    return sde.drift(x, t) - 0.5 * (1 + kappa**2) * per_example(sde.diffusion(t), x) * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
    },
    "reverse_drift_kappa_not_squared": {  # (1 + kappa)/2: right for kappa = 0 and 1 only
        "replace": {"reverse_drift": _REVERSE + '''
    return sde.drift(x, t) - 0.5 * (1 + kappa) * per_example(sde.diffusion(t) ** 2, x) * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
        "visible": True,
    },
    "reverse_drift_coefficient_against_columns": {  # g(t)^2 of a (B,) t multiplied with (B, D) without per_example
        "replace": {"reverse_drift": _REVERSE + '''
    return sde.drift(x, t) - 0.5 * (1 + kappa**2) * sde.diffusion(t) ** 2 * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
        "visible": True,
    },
    "reverse_drift_default_kappa_zero": {  # the default is the probability-flow ODE instead of Anderson's SDE
        "replace": {"reverse_drift": '''
def reverse_drift(sde, x, t, *, score, kappa=0.0):
    """Drift of the reverse-time SDE with noise kappa g."""
    return sde.drift(x, t) - 0.5 * (1 + kappa**2) * per_example(sde.diffusion(t) ** 2, x) * score
'''},
        "must_lose": ["reverse_drift_tests"],
    },
    # -------------------------------------------------------------------------------------------- C: pf_drift
    "copied_from_package_pf_drift": {  # ddpm_scratch.sde.probability_flow_drift: the denoiser's output taken as a score
        "replace": {"pf_drift": '''
def probability_flow_drift(sde, x, t, *, x0):
    """The package's probability-flow drift, given what the network returned."""
    from ddpm_scratch.sde import probability_flow_drift as package_flow

    return package_flow(sde, x, t, score=x0)
'''},
        "must_lose": ["pf_drift_tests"],
        "visible": True,
    },
    "pf_drift_without_half": {  # f - g^2 score: the reverse SDE's drift without its noise
        "replace": {"pf_drift": _FLOW + '''
    return sde.drift(x, t) - g2 * (m * x0 - x) / s**2
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "pf_drift_half_on_the_drift_too": {  # 1/2 (f - g^2 score): the half applied to the whole drift
        "replace": {"pf_drift": _FLOW + '''
    return 0.5 * (sde.drift(x, t) - g2 * (m * x0 - x) / s**2)
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "pf_drift_tweedie_without_mean_coef": {  # score = (x0 - x) / sigma^2: the kernel's mean taken as x0
        "replace": {"pf_drift": _FLOW + '''
    return sde.drift(x, t) - 0.5 * g2 * (x0 - x) / s**2
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "pf_drift_tweedie_over_std": {  # score = (m x0 - x) / sigma: std for variance
        "replace": {"pf_drift": _FLOW + '''
    return sde.drift(x, t) - 0.5 * g2 * (m * x0 - x) / s
'''},
        "must_lose": ["pf_drift_tests"],
        "visible": True,
    },
    "pf_drift_vp_variance_for_subvp": {  # sigma^2 = 1 - m^2, the VP's, whatever the SDE
        "replace": {"pf_drift": _FLOW + '''
    return sde.drift(x, t) - 0.5 * g2 * (m * x0 - x) / (1 - m**2)
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "pf_drift_coefficients_against_columns": {  # m, sigma and g^2 of a (B,) t multiplied with (B, D) directly
        "replace": {"pf_drift": '''
def probability_flow_drift(sde, x, t, *, x0):
    """Probability-flow drift from a denoiser's output."""
    m, s = marginal(sde, t)
    return sde.drift(x, t) - 0.5 * sde.diffusion(t) ** 2 * (m * x0 - x) / s**2
'''},
        "must_lose": ["pf_drift_tests"],
        "visible": True,
    },
    # --------------------------------------------------------------------------------------------- D: em_step
    "copied_from_package_em_step": {  # score_solvers' Euler-Maruyama step: x - reverse_drift h + g sqrt(h) z, kappa = 1
        "replace": {"em_step": '''
def em_step(sde, x, t, dt, *, score, z, kappa=1.0):
    """score_solvers' Euler-Maruyama step, with the package's reverse drift."""
    from ddpm_scratch.schedules import per_example as package_per_example
    from ddpm_scratch.sde import reverse_drift as package_reverse_drift

    x_mean = x - package_reverse_drift(sde, x, t, score=score) * dt
    return x_mean + package_per_example(sde.diffusion(t), x) * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
        "visible": True,
    },
    "em_step_forward_in_time": {  # x + drift dt: steps as if time increased
        "replace": {"em_step": _EM + '''
    return x + reverse_drift(sde, x, t, score=score, kappa=kappa) * dt + kappa * g * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_noise_scaled_by_dt": {  # kappa g dt z instead of kappa g sqrt(dt) z: almost no noise
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score, kappa=kappa) * dt + kappa * g * dt * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_without_noise": {  # the deterministic part only
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score, kappa=kappa) * dt
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_noise_without_kappa": {  # g sqrt(dt) z whatever kappa is: kappa = 0 is then no ODE
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score, kappa=kappa) * dt + g * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_with_probability_flow_drift": {  # the ODE's drift (kappa = 0) with the SDE's noise: over-dispersed
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score, kappa=0.0) * dt + kappa * g * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_coefficients_at_the_end": {  # beta and g read at t - dt, the end of the step
        "replace": {"em_step": '''
def em_step(sde, x, t, dt, *, score, z, kappa=1.0):
    """One Euler-Maruyama step, its coefficients read where it lands."""
    end = t - dt
    g = per_example(sde.diffusion(end), x)
    return x - reverse_drift(sde, x, end, score=score, kappa=kappa) * dt + kappa * g * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
        "visible": True,
    },
    "em_step_default_kappa_zero": {  # the default is Euler on the ODE instead of Anderson's SDE
        "replace": {"em_step": '''
def em_step(sde, x, t, dt, *, score, z, kappa=0.0):
    """One Euler-Maruyama step of the reverse-time SDE with noise kappa g, from t to t - dt."""
    g = per_example(sde.diffusion(t), x)
    return x - reverse_drift(sde, x, t, score=score, kappa=kappa) * dt + kappa * g * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
    },
    # ------------------------------------------------------------------------------------------- E1: dsm_target
    "copied_from_package_dsm_target": {  # the kernel's score with the package's VP kernel (linear beta)
        "replace": {"dsm_target": '''
def dsm_target(sde, x_t, t, *, x0):
    """grad_{x_t} log q(x_t | x0), the kernel from the package's VPSDE."""
    from ddpm_scratch.schedules import per_example as package_per_example
    from ddpm_scratch.sde import VPSDE as PackageVPSDE

    m, s = PackageVPSDE(beta_min=sde.coefs[0], beta_max=sde.beta(1.0)).marginal(t)
    return -(x_t - package_per_example(m, x_t) * x0) / package_per_example(s, x_t) ** 2
'''},
        "must_lose": ["dsm_target_tests"],
        "visible": True,
    },
    "dsm_target_plus_eps_over_sigma": {  # +eps / sigma: the sign of the target flipped
        "replace": {"dsm_target": _TARGET + '''
    return (x_t - m * x0) / s**2
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_target_minus_eps": {  # -(x_t - m x0) / sigma = -eps: one factor 1/sigma missing
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - m * x0) / s
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_target_eps_over_sigma_squared": {  # -eps / sigma^2 = -(x_t - m x0) / sigma^3
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - m * x0) / s**3
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_target_without_mean_coef": {  # -(x_t - x0) / sigma^2: the kernel's mean taken as x0
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - x0) / s**2
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_target_mean_coef_and_std_swapped": {  # the mean coefficient and the standard deviation mixed up
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - s * x0) / m**2
'''},
        "must_lose": ["dsm_target_tests"],
        "visible": True,
    },
    "dsm_target_vp_variance_for_subvp": {  # sigma^2 = 1 - m^2, the VP's, whatever the SDE
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - m * x0) / (1 - m**2)
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_target_coefficients_against_columns": {  # m and sigma of a (B,) t multiplied with (B, D) directly
        "replace": {"dsm_target": '''
def dsm_target(sde, x_t, t, *, x0):
    """grad_{x_t} log q(x_t | x0)."""
    m, s = marginal(sde, t)
    return -(x_t - m * x0) / s**2
'''},
        "must_lose": ["dsm_target_tests"],
        "visible": True,
    },
    # --------------------------------------------------------------------------------------------- E2: dsm_loss
    "copied_from_package_dsm_loss": {  # ddpm_scratch.score.dsm_loss: sigma^2-weighted DSM of a *score* model
        "replace": {"dsm_loss": '''
def dsm_loss(eps_model, sde, x0, t, *, eps):
    """The package's DSM loss, the notebook's SDE given the marginal it asks for."""
    from types import SimpleNamespace

    from ddpm_scratch.score import dsm_loss as package_dsm_loss

    process = SimpleNamespace(marginal=lambda u: marginal(sde, u), diffusion=sde.diffusion)
    return package_dsm_loss(eps_model, process, x0, t=t, noise=eps)
'''},
        "must_lose": ["dsm_loss_tests"],
        "visible": True,
    },
    "dsm_loss_sigma2_weighting": {  # lambda = sigma^2 (lesson 3's L_simple) instead of the likelihood weighting
        "replace": {"dsm_loss": _LOSS + '''
    return ((eps - eps_model(x_t, t_batch)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_weight_without_over_sigma2": {  # g^2 (eps - eps_theta)^2: the 1/sigma^2 of the eps form forgotten
        "replace": {"dsm_loss": _LOSS + '''
    return (g2 * (eps - eps_model(x_t, t_batch)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_g_not_squared": {  # g / sigma^2 for g^2 / sigma^2
        "replace": {"dsm_loss": _LOSS + '''
    g = per_example(sde.diffusion(t), x0)
    return (g / s**2 * (eps - eps_model(x_t, t_batch)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_model_sees_x0": {  # the network evaluated on the clean data instead of x_t
        "replace": {"dsm_loss": _LOSS + '''
    return (g2 / s**2 * (eps - eps_model(x0, t_batch)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
        "visible": True,
    },
    "dsm_loss_sum_over_coordinates": {  # summed over the D coordinates, averaged over the batch only
        "replace": {"dsm_loss": _LOSS + '''
    return (g2 / s**2 * (eps - eps_model(x_t, t_batch)) ** 2).sum(dim=1).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_float_t_to_the_network": {  # a float t handed to the network as it came, not as a (B,) tensor
        "replace": {"dsm_loss": _LOSS + '''
    return (g2 / s**2 * (eps - eps_model(x_t, t)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
        "visible": True,
    },
}
