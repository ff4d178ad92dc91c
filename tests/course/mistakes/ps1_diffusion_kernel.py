"""Plausible wrong submissions of ps1_diffusion_kernel, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum.
"""

MISTAKES = {
    "off_by_one_alpha_bar": {  # alpha_bar[t] = prod_{s < t}: the product stops one factor early
        "replace": {"alpha_bar": '''
def alpha_bar_from_betas(betas):
    """alpha_bar_t for t = 0..T."""
    alphas = 1 - betas
    return torch.cat([torch.ones(1), torch.cumprod(alphas, dim=0)[:-1]])
'''},
        "must_lose": ["alpha_bar_tests"],
    },
    "alpha_bar_without_leading_one": {  # cumprod over beta_1..beta_T only: length T, index t holds alpha_bar_{t+1}
        "replace": {"alpha_bar": '''
def alpha_bar_from_betas(betas):
    """alpha_bar_t for t = 1..T."""
    return torch.cumprod(1 - betas[1:], dim=0)
'''},
        "must_lose": ["alpha_bar_tests"],
    },
    "missing_sqrt_in_q_sample": {  # the variances used as coefficients
        "replace": {"q_sample": '''
def q_sample(alpha_bar, x0, t, *, eps):
    """x_t from x0 and eps."""
    coef = alpha_bar[t].reshape(-1, *([1] * (x0.dim() - 1)))
    return coef * x0 + (1 - coef) * eps
'''},
        "must_lose": ["q_sample_tests"],
    },
    "q_sample_uses_alpha_bar_t_minus_1": {  # index t - 1: alpha_bar treated as if it started at t = 1
        "replace": {"q_sample": '''
def q_sample(alpha_bar, x0, t, *, eps):
    """x_t from x0 and eps."""
    coef = alpha_bar[(t - 1).clamp(min=0)].reshape(-1, *([1] * (x0.dim() - 1)))
    return coef.sqrt() * x0 + (1 - coef).sqrt() * eps
'''},
        "must_lose": ["q_sample_tests"],
    },
    "variance_recursion_with_unsquared_coefficient": {  # v_t = sqrt(1 - beta_t) v_{t-1} + beta_t
        "replace": {"propagate": '''
def propagate_moments(x0, betas):
    """Mean and variance of x_t for every t."""
    T = betas.numel() - 1
    mean, var = torch.empty(T + 1), torch.empty(T + 1)
    mean[0], var[0] = x0, 0.0
    for t in range(1, T + 1):
        mean[t] = (1 - betas[t]).sqrt() * mean[t - 1]
        var[t] = (1 - betas[t]).sqrt() * var[t - 1] + betas[t]
    return mean, var
'''},
        "must_lose": ["propagate_tests"],
    },
    "chain_noise_scaled_by_beta": {  # noise of standard deviation beta_t instead of sqrt(beta_t)
        "replace": {"forward_chain": '''
def forward_chain(betas, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        x = (1 - betas[s]).sqrt() * x + betas[s] * torch.randn(x.shape, generator=generator)
    return x
'''},
        "must_lose": ["forward_chain_tests"],
    },
    "chain_noise_one_per_example": {  # noise shaped like the batch (B,), not like x: one draw shared by the coordinates
        "replace": {"forward_chain": '''
def forward_chain(betas, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        eps = torch.randn(x.shape[0], generator=generator).reshape(-1, *([1] * (x.dim() - 1)))
        x = (1 - betas[s]).sqrt() * x + betas[s].sqrt() * eps
    return x
'''},
        "must_lose": ["forward_chain_tests"],
    },
    "variance_error_bar_like_the_mean": {  # sqrt(v / n) used for the sample variance too
        "replace": {"mc_tolerance": '''
def mc_tolerances(var, n, *, kurtosis, k=5.0):
    """k standard errors of the sample mean and variance."""
    return k * math.sqrt(var / n), k * math.sqrt(var / n)
'''},
        "must_lose": ["mc_tolerance_tests"],
    },
    "variance_error_bar_with_n": {  # Var s^2 = (kappa - 1) v^2 / n: the large-n value (lesson 1 estimates it)
        "replace": {"mc_tolerance": '''
def mc_tolerances(var, n, *, kurtosis, k=5.0):
    """k standard errors of the sample mean and variance."""
    return k * math.sqrt(var / n), k * var * math.sqrt((kurtosis - 1) / n)
'''},
        "must_lose": ["mc_tolerance_tests"],
    },
    "variance_error_bar_ignores_kurtosis": {  # the Gaussian error bar of lesson 1, whatever the distribution
        "replace": {"mc_tolerance": '''
def mc_tolerances(var, n, *, kurtosis, k=5.0):
    """k standard errors of the sample mean and variance."""
    return k * math.sqrt(var / n), k * var * math.sqrt(2 / (n - 1))
'''},
        "must_lose": ["mc_tolerance_tests"],
    },
    "variance_error_bar_kurtosis_over_n_minus_one": {  # (kappa - 1) / (n - 1): exact for Gaussians only
        "replace": {"mc_tolerance": '''
def mc_tolerances(var, n, *, kurtosis, k=5.0):
    """k standard errors of the sample mean and variance."""
    return k * math.sqrt(var / n), k * var * math.sqrt((kurtosis - 1) / (n - 1))
'''},
        "must_lose": ["mc_tolerance_tests"],
    },
    "posterior_variance_of_the_jump": {  # forgetting that x0 is known: the jump's own variance 1 - abar_t / abar_s
        "replace": {"posterior": '''
def q_posterior(alpha_bar, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    ab_s, ab_t = alpha_bar[s], alpha_bar[t]
    a_jump = ab_t / ab_s
    mean = ab_s.sqrt() * (1 - a_jump) / (1 - ab_t) * x0 + a_jump.sqrt() * (1 - ab_s) / (1 - ab_t) * x_t
    return mean, 1 - a_jump
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_variance_ratio_swapped": {  # (1 - alpha_bar_t) / (1 - alpha_bar_s) (1 - alpha_bar_t / alpha_bar_s)
        "replace": {"posterior": '''
def q_posterior(alpha_bar, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    ab_s, ab_t = alpha_bar[s], alpha_bar[t]
    a_jump = ab_t / ab_s
    mean = ab_s.sqrt() * (1 - a_jump) / (1 - ab_t) * x0 + a_jump.sqrt() * (1 - ab_s) / (1 - ab_t) * x_t
    var = (1 - ab_t) / (1 - ab_s) * (1 - a_jump) if s > 0 else torch.tensor(0.0)
    return mean, var
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_jump_as_one_step": {  # the lesson's formula with t - 1 -> s in alpha_bar only: alpha_t, beta_t kept
        "replace": {"posterior": '''
def q_posterior(alpha_bar, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    ab_s, ab_t = alpha_bar[s], alpha_bar[t]
    alpha_t = ab_t / alpha_bar[t - 1]
    beta_t = 1 - alpha_t
    mean = ab_s.sqrt() * beta_t / (1 - ab_t) * x0 + alpha_t.sqrt() * (1 - ab_s) / (1 - ab_t) * x_t
    return mean, (1 - ab_s) / (1 - ab_t) * beta_t
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_jump_coefficient_without_sqrt": {  # alpha_bar_t / alpha_bar_s multiplies x_t, not its square root
        "replace": {"posterior": '''
def q_posterior(alpha_bar, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    ab_s, ab_t = alpha_bar[s], alpha_bar[t]
    a_jump = ab_t / ab_s
    mean = ab_s.sqrt() * (1 - a_jump) / (1 - ab_t) * x0 + a_jump * (1 - ab_s) / (1 - ab_t) * x_t
    return mean, (1 - ab_s) / (1 - ab_t) * (1 - a_jump)
'''},
        "must_lose": ["posterior_tests"],
    },
    "kl_arguments_reversed": {  # KL(N2 || N1): the expectation taken under the wrong Gaussian
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, var1, mean2, var2):
    """KL divergence between two Gaussians."""
    return 0.5 * (torch.log(var1) - torch.log(var2) + (var2 + (mean1 - mean2) ** 2) / var1 - 1)
'''},
        "must_lose": ["gaussian_kl_tests"],
    },
    "kl_log_of_standard_deviations_without_half": {  # log(s2 / s1) + ... with variances, the 1/2 dropped
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, var1, mean2, var2):
    """KL divergence between two Gaussians."""
    return torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / (2 * var2) - 0.5
'''},
        "must_lose": ["gaussian_kl_tests"],
    },
    "prior_in_nats": {  # the KL left in nats: bits/dim needs the division by ln 2
        "replace": {"prior_bpd": '''
def prior_bits_per_dim(x0, alpha_bar_T):
    """L_T per example."""
    var = torch.full_like(x0, 1 - alpha_bar_T)
    kl = gaussian_kl(math.sqrt(alpha_bar_T) * x0, var, torch.zeros_like(x0), torch.ones_like(x0))
    return kl.flatten(1).mean(dim=1)
'''},
        "must_lose": ["prior_bpd_tests"],
    },
    "drowning_step_off_by_one": {  # the position in alpha_bar[1:] returned as if it were t
        "replace": {"drowning": '''
def drowning_step(power, alpha_bar):
    """First t with SNR_k(t) < 1."""
    T = alpha_bar.numel() - 1
    a = alpha_bar[1:, None]
    below = a * power[None, :] / (1 - a) < 1
    first = below.to(torch.uint8).argmax(dim=0)
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
    },
    "drowning_step_at_or_below": {  # SNR <= 1 instead of < 1: a frequency whose SNR is exactly 1 counted as drowned
        "replace": {"drowning": '''
def drowning_step(power, alpha_bar):
    """First t with SNR_k(t) < 1."""
    T = alpha_bar.numel() - 1
    a = alpha_bar[1:, None]
    below = a * power[None, :] / (1 - a) <= 1
    first = below.to(torch.uint8).argmax(dim=0) + 1
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
    },
}
