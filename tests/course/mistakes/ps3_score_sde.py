"""Plausible wrong submissions of ps3_score_sde, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum.
"""

_MARGINAL = '''
def vp_marginal(sde, t):
    """(m(t), sigma(t)) of the VP kernel."""'''  # + the body

_EM = '''
def em_step(sde, x, t, dt, *, score, z):
    """One Euler-Maruyama step of the reverse SDE, from t to t - dt."""'''  # + the body

_TARGET = '''
def dsm_target(sde, x_t, t, *, x0):
    """grad_{x_t} log q(x_t | x0)."""
    m, s = vp_marginal(sde, t)
    m, s = m[:, None], s[:, None]'''  # + the return line

_LOSS = '''
def dsm_loss(score_model, sde, x0, t, *, eps):
    """sigma^2-weighted DSM loss on a batch."""
    m, s = vp_marginal(sde, t)
    m, s = m[:, None], s[:, None]
    x_t = m * x0 + s * eps'''  # + the return line

MISTAKES = {
    "marginal_linear_antiderivative": {  # the linear schedule's closed form, beta_min t + (beta_max - beta_min) t^2 / 2
        "replace": {"vp_marginal": _MARGINAL + '''
    beta_min, beta_max = sde.coefs[0], sde.beta(1.0)
    log_m = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return log_m.exp(), (1 - (2 * log_m).exp()).sqrt()
'''},
        "must_lose": ["vp_marginal_tests"],
    },
    "marginal_integrates_only_the_leading_term": {  # int_0^t c_k t^k taken as c_k t^k * t (no division by k + 1)
        "replace": {"vp_marginal": _MARGINAL + '''
    integral = sum(c * t ** (k + 1) for k, c in enumerate(sde.coefs))
    m2 = torch.exp(-integral)
    return m2.sqrt(), (1 - m2).sqrt()
'''},
        "must_lose": ["vp_marginal_tests"],
    },
    "marginal_mean_without_half": {  # m = exp(-int beta): that is alpha_bar, not its square root
        "replace": {"vp_marginal": _MARGINAL + '''
    integral = sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs))
    m = torch.exp(-integral)
    return m, (1 - m**2).sqrt()
'''},
        "must_lose": ["vp_marginal_tests"],
    },
    "marginal_std_as_variance": {  # returns sigma^2 = 1 - m^2 where sigma is asked for
        "replace": {"vp_marginal": _MARGINAL + '''
    integral = sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs))
    m = torch.exp(-0.5 * integral)
    return m, 1 - m**2
'''},
        "must_lose": ["vp_marginal_tests"],
    },
    "marginal_std_from_mean_coef_as_alpha_bar": {  # sigma = sqrt(1 - m), as if m were alpha_bar
        "replace": {"vp_marginal": _MARGINAL + '''
    integral = sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs))
    m = torch.exp(-0.5 * integral)
    return m, (1 - m).sqrt()
'''},
        "must_lose": ["vp_marginal_tests"],
    },
    "reverse_drift_plus_score": {  # f + g^2 score: the sign of the score term flipped
        "replace": {"reverse_drift": '''
def reverse_drift(sde, x, t, *, score):
    """Reverse-SDE drift."""
    return sde.drift(x, t) + sde.diffusion(t) ** 2 * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
    },
    "reverse_drift_g_instead_of_g_squared": {  # f - g score
        "replace": {"reverse_drift": '''
def reverse_drift(sde, x, t, *, score):
    """Reverse-SDE drift."""
    return sde.drift(x, t) - sde.diffusion(t) * score
'''},
        "must_lose": ["reverse_drift_tests", "em_step_tests"],
    },
    "pf_drift_without_half": {  # f - g^2 score: the reverse SDE's drift without its noise
        "replace": {"pf_drift": '''
def probability_flow_drift(sde, x, t, *, score):
    """Probability-flow drift."""
    return sde.drift(x, t) - sde.diffusion(t) ** 2 * score
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "pf_drift_half_on_the_drift_too": {  # 1/2 (f - g^2 score): the half applied to the whole drift
        "replace": {"pf_drift": '''
def probability_flow_drift(sde, x, t, *, score):
    """Probability-flow drift."""
    return 0.5 * (sde.drift(x, t) - sde.diffusion(t) ** 2 * score)
'''},
        "must_lose": ["pf_drift_tests"],
    },
    "em_step_forward_in_time": {  # x + drift dt: steps as if time increased
        "replace": {"em_step": _EM + '''
    return x + reverse_drift(sde, x, t, score=score) * dt + sde.diffusion(t) * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_noise_scaled_by_dt": {  # g dt z instead of g sqrt(dt) z: almost no noise
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score) * dt + sde.diffusion(t) * dt * z
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_without_noise": {  # the deterministic part only
        "replace": {"em_step": _EM + '''
    return x - reverse_drift(sde, x, t, score=score) * dt
'''},
        "must_lose": ["em_step_tests"],
    },
    "em_step_with_probability_flow_drift": {  # the ODE's drift with the SDE's noise: over-dispersed samples
        "replace": {"em_step": _EM + '''
    return x - probability_flow_drift(sde, x, t, score=score) * dt + sde.diffusion(t) * math.sqrt(dt) * z
'''},
        "must_lose": ["em_step_tests"],
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
    "dsm_target_mean_coef_and_std_swapped": {  # the mean coefficient sqrt(alpha_bar) and sqrt(1 - alpha_bar) mixed up
        "replace": {"dsm_target": _TARGET + '''
    return -(x_t - s * x0) / m**2
'''},
        "must_lose": ["dsm_target_tests"],
    },
    "dsm_loss_weighted_twice": {  # sigma^4: the sigma^2 weighting applied on top of a target already scaled by sigma
        "replace": {"dsm_loss": _LOSS + '''
    return (s**4 * (score_model(x_t, t) - dsm_target(sde, x_t, t, x0=x0)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_unweighted": {  # lambda(t) = 1: dominated by the smallest t
        "replace": {"dsm_loss": _LOSS + '''
    return ((score_model(x_t, t) - dsm_target(sde, x_t, t, x0=x0)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
    "dsm_loss_model_sees_x0": {  # the model evaluated on the clean data instead of x_t
        "replace": {"dsm_loss": _LOSS + '''
    return (s**2 * (score_model(x0, t) - dsm_target(sde, x_t, t, x0=x0)) ** 2).mean()
'''},
        "must_lose": ["dsm_loss_tests"],
    },
}
