"""Plausible wrong submissions of ps5_guidance, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The entries "copied_from_package_<cell>" are what a student gets by calling or transcribing the nearest function of
the shipped package (`ddpm_scratch.guidance`), which guides an eps-predicting network along one label: each must lose
its cell's points.
"""

_COMPOSED = '''
def composed_eps(*, eps_uncond, eps_conds, gammas):
    """eps_u + sum_i gamma_i (eps_{c_i} - eps_u)."""
    scales = torch.as_tensor(gammas, dtype=eps_uncond.dtype).flatten()
    if scales.numel() != eps_conds.shape[0]:
        raise ValueError(f"gammas needs one scale per condition, got {len(scales)}")'''  # + the body

_GUIDED = '''
def guided_x0(sched, x_t, t, *, x0, log_prob_y, gamma):
    """The guided denoiser."""
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps'''  # + abar and the gradient

_ABAR = '''
    abar = sched.alpha_bars[steps].reshape(B, *[1] * (x_t.dim() - 1))'''

_GRAD = '''
    with torch.enable_grad():
        x = x_t.detach().clone().requires_grad_()
        grad = torch.autograd.grad(log_prob_y(x, steps).sum(), [x])[0]'''

_THRESHOLD = '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """v with its x0 dynamically thresholded."""
    if not 0 < percentile <= 1:
        raise ValueError(f"percentile must be in (0, 1], got {percentile}")
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].reshape(B, *[1] * (x_t.dim() - 1))
    a, b = abar.sqrt().to(x_t.dtype), (1 - abar).sqrt().to(x_t.dtype)'''  # + the body

_BACK = '''
    return (a * x_t - x0) / b
'''

MISTAKES = {
    # ------------------------------------------------------------------------------------------------ Part A
    "copied_from_package_composed_eps": {  # the package's classifier_free_eps once per condition, summed: right for
        # one condition, N eps_u + ... for several (the unconditional prediction counted once per condition)
        "replace": {"composed_eps": '''
def composed_eps(*, eps_uncond, eps_conds, gammas):
    """CFG with the package, one condition at a time."""
    from ddpm_scratch.guidance import classifier_free_eps

    if len(gammas) != eps_conds.shape[0]:
        raise ValueError("gammas needs one scale per condition")
    return sum(classifier_free_eps(eps_uncond=eps_uncond, eps_cond=eps_conds[i], gamma=float(g))
               for i, g in enumerate(gammas))
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    "composed_ho_salimans_w": {  # eps_u + sum (1 + gamma_i)(eps_ci - eps_u): Ho & Salimans' (1 + w) with gamma as w
        "replace": {"composed_eps": _COMPOSED + '''
    return eps_uncond + torch.tensordot(1 + scales, eps_conds - eps_uncond, dims=([0], [0]))
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    "composed_mean_of_cfgs": {  # the mean of the one-condition CFGs: each condition's guidance divided by N
        "replace": {"composed_eps": _COMPOSED + '''
    return torch.stack([(1 - g) * eps_uncond + g * e for g, e in zip(scales, eps_conds)]).mean(0)
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    "composed_sign": {  # eps_u - sum gamma_i (eps_ci - eps_u): guidance away from the conditions
        "replace": {"composed_eps": _COMPOSED + '''
    return eps_uncond - torch.tensordot(scales, eps_conds - eps_uncond, dims=([0], [0]))
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    "composed_gammas_on_the_last_dim": {  # gammas * (eps_conds - eps_u) broadcasts over the LAST dimension: an error
        # when D != N, wrong numbers when D == N
        "replace": {"composed_eps": _COMPOSED + '''
    return eps_uncond + (scales * (eps_conds - eps_uncond)).sum(0)
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    "composed_result_in_float64": {  # torch.tensor(gammas): the notebook's default dtype, float64, whatever the
        # predictions' dtype: float32 predictions give a float64 result
        "replace": {"composed_eps": '''
def composed_eps(*, eps_uncond, eps_conds, gammas):
    """eps_u + sum_i gamma_i (eps_{c_i} - eps_u)."""
    scales = torch.tensor([float(g) for g in gammas])
    if scales.numel() != eps_conds.shape[0]:
        raise ValueError(f"gammas needs one scale per condition, got {len(scales)}")
    return eps_uncond + torch.tensordot(scales, eps_conds.double() - eps_uncond.double(), dims=([0], [0]))
'''},
        "must_lose": ["composed_eps_tests"],
    },
    "composed_zip_ignores_extra": {  # zip over the conditions and the scales, no check: a wrong count passes
        "replace": {"composed_eps": '''
def composed_eps(*, eps_uncond, eps_conds, gammas):
    """eps_u + sum_i gamma_i (eps_{c_i} - eps_u)."""
    out = eps_uncond.clone()
    for g, e in zip(gammas, eps_conds):
        out = out + float(g) * (e - eps_uncond)
    return out
'''},
        "must_lose": ["composed_eps_tests"],
        "visible": True,
    },
    # ------------------------------------------------------------------------------------------------ Part B
    "copied_from_package_guided_x0": {  # the package's classifier_guided_eps given x0 as if it were eps: the eps-form
        # x - gamma sqrt(1 - abar) grad applied to a denoiser's output (wrong units and sign for x0)
        "replace": {"guided_x0": _GUIDED + _GRAD + '''
    from ddpm_scratch.guidance import classifier_guided_eps
    from ddpm_scratch.schedules import NoiseSchedule

    return classifier_guided_eps(NoiseSchedule.from_betas(sched.betas[1:]), x_t, t, eps=x0, grad_log_p_y=grad,
                                 gamma=gamma)
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_eps_units": {  # x0 + gamma sqrt(1 - abar) grad: the sign mended, the units still eps's
        "replace": {"guided_x0": _GUIDED + _ABAR + _GRAD + '''
    return x0 + (gamma * (1 - abar).sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_without_sqrt_abar": {  # x0 + gamma (1 - abar) grad: Tweedie's division by sqrt(abar) forgotten
        "replace": {"guided_x0": _GUIDED + _ABAR + _GRAD + '''
    return x0 + (gamma * (1 - abar)).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_sqrt_abar_for_one_minus": {  # x0 + gamma sqrt(abar) grad: sqrt(abar) where (1 - abar) / sqrt(abar) belongs
        "replace": {"guided_x0": _GUIDED + _ABAR + _GRAD + '''
    return x0 + (gamma * abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_alpha_not_alpha_bar": {  # alpha_t = 1 - beta_t where alpha_bar_t belongs
        "replace": {"guided_x0": _GUIDED + '''
    abar = sched.alphas[steps].reshape(B, *[1] * (x_t.dim() - 1))''' + _GRAD + '''
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_t_off_by_one": {  # alpha_bars[t - 1]: the steps counted from 0
        "replace": {"guided_x0": _GUIDED + '''
    abar = sched.alpha_bars[steps - 1].reshape(B, *[1] * (x_t.dim() - 1))''' + _GRAD + '''
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_fails_under_no_grad": {  # no torch.enable_grad(): inside a sampler's torch.no_grad() there is no graph
        "replace": {"guided_x0": _GUIDED + _ABAR + '''
    x = x_t.detach().clone().requires_grad_()
    grad = torch.autograd.grad(log_prob_y(x, steps).sum(), [x])[0]
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_gradient_of_the_mean": {  # the gradient of the batch's mean log-probability: each row's divided by B
        "replace": {"guided_x0": _GUIDED + _ABAR + '''
    with torch.enable_grad():
        x = x_t.detach().clone().requires_grad_()
        grad = torch.autograd.grad(log_prob_y(x, steps).mean(), [x])[0]
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_classifier_gets_the_int": {  # log_prob_y called with t as given: an int where a (B,) tensor is promised
        "replace": {"guided_x0": _GUIDED + _ABAR + '''
    with torch.enable_grad():
        x = x_t.detach().clone().requires_grad_()
        grad = torch.autograd.grad(log_prob_y(x, t).sum(), [x])[0]
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_marks_x_t": {  # x_t.requires_grad_() in place: the caller's x_t is left requiring a gradient
        "replace": {"guided_x0": _GUIDED + _ABAR + '''
    with torch.enable_grad():
        x_t.requires_grad_()
        grad = torch.autograd.grad(log_prob_y(x_t, steps).sum(), [x_t])[0]
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_one_step_per_batch": {  # abar read at the first row's step only: right for an int t, wrong per example
        "replace": {"guided_x0": _GUIDED + '''
    abar = sched.alpha_bars[steps[0]]''' + _GRAD + '''
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
        "visible": True,
    },
    "guided_vectors_only": {  # abar[:, None]: (B, 1) broadcasts against (B, D) only; images raise
        "replace": {"guided_x0": _GUIDED + '''
    abar = sched.alpha_bars[steps][:, None]''' + _GRAD + '''
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * grad
'''},
        "must_lose": ["guided_x0_tests"],
    },
    # ------------------------------------------------------------------------------------------------ Part C
    "copied_from_package_threshold_v": {  # the package's dynamic_threshold applied to the network's output, v, as if
        # it were x0
        "replace": {"threshold_v": '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """Dynamic thresholding with the package."""
    from ddpm_scratch.guidance import dynamic_threshold

    return dynamic_threshold(v, percentile=percentile)
'''},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_global_percentile": {  # one s for the whole batch: the quantile over every entry of every sample
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t - b * v
    s = torch.quantile(x0.abs().flatten(), percentile).clamp(min=1.0)
    x0 = x0.clamp(-s, s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_clip_without_rescaling": {  # clipped to [-s, s] and left there: x0 out of [-1, 1]
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s)''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_s_below_one": {  # no max(s, 1): a sample within range is blown up to fill [-1, 1]
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_static": {  # static thresholding: x0 clipped to [-1, 1], outliers saturate
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = (a * x_t - b * v).clamp(-1.0, 1.0)''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_returns_x0": {  # the thresholded x0 returned, not converted back to v
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    return torch.minimum(torch.maximum(x0, -s), s) / s
'''},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_v_sign": {  # x0 = sqrt(abar) x_t + sqrt(1 - abar) v: the sign of v's x0 part turned
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t + b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s
    return (x0 - a * x_t) / b
'''},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_percent": {  # percentile read in percent, 0 < p <= 100, divided by 100: the default 0.995 becomes
        # the quantile 0.00995, and 99.5 is accepted
        "replace": {"threshold_v": '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """v with its x0 dynamically thresholded."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].reshape(B, *[1] * (x_t.dim() - 1))
    a, b = abar.sqrt().to(x_t.dtype), (1 - abar).sqrt().to(x_t.dtype)
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile / 100, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_quantile_of_signed_x0": {  # the quantile of x0, not of |x0|: negative outliers never set s
        "replace": {"threshold_v": _THRESHOLD + '''
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
    },
    "threshold_coefficients_in_float32": {  # abar cast to float32 before 1 - abar: at t = 1, 1 - abar keeps three
        # digits, and dividing by sqrt(1 - abar) shows it
        "replace": {"threshold_v": '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """v with its x0 dynamically thresholded."""
    if not 0 < percentile <= 1:
        raise ValueError(f"percentile must be in (0, 1], got {percentile}")
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].to(x_t.dtype).reshape(B, *[1] * (x_t.dim() - 1))
    a, b = abar.sqrt(), (1 - abar).sqrt()
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
    },
    "threshold_t_off_by_one": {  # alpha_bars[t - 1]: x0 read at the wrong noise level
        "replace": {"threshold_v": '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """v with its x0 dynamically thresholded."""
    if not 0 < percentile <= 1:
        raise ValueError(f"percentile must be in (0, 1], got {percentile}")
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps - 1].reshape(B, *[1] * (x_t.dim() - 1))
    a, b = abar.sqrt().to(x_t.dtype), (1 - abar).sqrt().to(x_t.dtype)
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
    "threshold_no_percentile_check": {  # any percentile accepted: 99.5 reaches torch.quantile, which raises a
        # RuntimeError, not a ValueError naming the argument
        "replace": {"threshold_v": '''
def threshold_v(sched, x_t, t, *, v, percentile=0.995):
    """v with its x0 dynamically thresholded."""
    B = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(B) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].reshape(B, *[1] * (x_t.dim() - 1))
    a, b = abar.sqrt().to(x_t.dtype), (1 - abar).sqrt().to(x_t.dtype)
    x0 = a * x_t - b * v
    s = torch.quantile(x0.reshape(B, -1).abs(), percentile, dim=1).clamp(min=1.0).reshape(a.shape)
    x0 = torch.minimum(torch.maximum(x0, -s), s) / s''' + _BACK},
        "must_lose": ["threshold_v_tests"],
        "visible": True,
    },
}
