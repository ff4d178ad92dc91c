"""Plausible wrong submissions of ps1_diffusion_kernel, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The `copied_from_package_<cell>` entries are what a student gets by calling (or transcribing) the nearest function
of the shipped package, `ddpm_scratch`, instead of answering: the package implements DDPM's variance-preserving chain
and one step back, and each part asks for something it does not contain (another chain, a jump, a full covariance, a
designed schedule), so each of these loses its cell's points.
"""

_VP_SCHEDULE = '''
    from ddpm_scratch.schedules import NoiseSchedule

    alpha_bar = kernel.m**2  # the package knows DDPM's chain only: alpha_bar = m^2, 1 - alpha_bar = v assumed
    schedule = NoiseSchedule.from_betas(1 - alpha_bar[1:] / alpha_bar[:-1])'''

MISTAKES = {
    # ---------------------------------------------------------------------------------------- A: alpha_bar
    "copied_from_package_alpha_bar": {  # the package's one schedule designed by its alpha_bar: the cosine one
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    from ddpm_scratch.schedules import NoiseSchedule

    schedule = NoiseSchedule.cosine(alpha_bar.numel() - 1, max_beta=max_beta)
    return schedule.betas.to(alpha_bar.dtype), schedule.alpha_bars.to(alpha_bar.dtype)
'''},
        "must_lose": ["alpha_bar_tests"],
        "visible": True,
    },
    "off_by_one_alpha_bar": {  # alpha_bar[t] = prod_{s < t}: the recomputed product stops one factor early
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    betas = torch.cat([torch.zeros_like(alpha_bar[:1]), (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)])
    alphas = 1 - betas
    return betas, torch.cat([torch.ones_like(alpha_bar[:1]), torch.cumprod(alphas, dim=0)[:-1]])
'''},
        "must_lose": ["alpha_bar_tests"],
        "visible": True,
    },
    "alpha_bar_without_leading_one": {  # cumprod over beta_1..beta_T only: length T, index t holds alpha_bar_{t+1}
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    betas = torch.cat([torch.zeros_like(alpha_bar[:1]), (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)])
    return betas, torch.cumprod(1 - betas[1:], dim=0)
'''},
        "must_lose": ["alpha_bar_tests"],
        "visible": True,
    },
    "betas_shifted_by_one": {  # beta_t = 1 - alpha_bar_{t+1} / alpha_bar_t: the ratio of the next step
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    betas = torch.zeros_like(alpha_bar)
    betas[:-1] = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return betas, torch.cumprod(1 - betas, dim=0)
'''},
        "must_lose": ["alpha_bar_tests"],
    },
    "alpha_bar_not_recomputed_after_clipping": {  # returns the target, which clipped betas no longer produce
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    betas = torch.cat([torch.zeros_like(alpha_bar[:1]), (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)])
    return betas, alpha_bar
'''},
        "must_lose": ["alpha_bar_tests"],
        "visible": True,
    },
    "betas_in_the_default_dtype": {  # torch.zeros(1) is float64 here, and torch.cat promotes a float32 target
        "replace": {"alpha_bar": '''
def betas_from_alpha_bar(alpha_bar, *, max_beta=0.999):
    """Betas of a target alpha_bar, clipped."""
    betas = torch.cat([torch.zeros(1), (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)])
    return betas, torch.cumprod(1 - betas, dim=0)
'''},
        "must_lose": ["alpha_bar_tests"],
    },
    # ---------------------------------------------------------------------------------------- B: q_jump
    "copied_from_package_q_sample": {  # forward.q_sample: the kernel from x0, whatever s is (and DDPM's chain only)
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.forward import q_sample

    return q_sample(schedule, x_s, t, noise=eps)
'''},
        "must_lose": ["q_sample_tests"],
        "visible": True,
    },
    "missing_sqrt_in_q_jump": {  # the jump's variance w used as the noise's coefficient
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""
    shape = (-1, *([1] * (x_s.dim() - 1)))
    c = kernel.m[t] / kernel.m[s]
    w = kernel.v[t] - c**2 * kernel.v[s]
    return (c.reshape(shape) * x_s + w.reshape(shape) * eps).to(x_s.dtype)
'''},
        "must_lose": ["q_sample_tests"],
    },
    "jump_variance_not_scaled": {  # w = v_t - v_s: the variance at s is carried over as it is, not scaled by c^2
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""
    shape = (-1, *([1] * (x_s.dim() - 1)))
    c = kernel.m[t] / kernel.m[s]
    w = kernel.v[t] - kernel.v[s]
    return (c.reshape(shape) * x_s + w.sqrt().reshape(shape) * eps).to(x_s.dtype)
'''},
        "must_lose": ["q_sample_tests"],
    },
    "q_jump_uses_t_minus_1": {  # index t - 1: the arrays treated as if they started at t = 1
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""
    shape = (-1, *([1] * (x_s.dim() - 1)))
    t_index = torch.as_tensor(t) - 1
    s_index = torch.as_tensor(s)
    c = kernel.m[t_index.clamp(min=s_index)] / kernel.m[s_index]
    w = (kernel.v[t_index.clamp(min=s_index)] - c**2 * kernel.v[s_index]).clamp(min=0)
    return (c.reshape(shape) * x_s + w.sqrt().reshape(shape) * eps).to(x_s.dtype)
'''},
        "must_lose": ["q_sample_tests"],
    },
    "q_jump_coefficients_not_reshaped": {  # (B,) coefficients broadcast against the last dimension, not the batch
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""
    c = kernel.m[t] / kernel.m[s]
    w = (kernel.v[t] - c**2 * kernel.v[s]).clamp(min=0)
    return (c * x_s + w.sqrt() * eps).to(x_s.dtype)
'''},
        "must_lose": ["q_sample_tests"],
    },
    "q_jump_returns_float64": {  # float64 coefficients of shape (B, 1, ...) promote float32 data
        "replace": {"q_sample": '''
def q_jump(kernel, x_s, s, t, *, eps):
    """A sample of q(x_t | x_s)."""
    shape = (-1, *([1] * (x_s.dim() - 1)))
    c = kernel.m[t] / kernel.m[s]
    w = (kernel.v[t] - c**2 * kernel.v[s]).clamp(min=0)
    return c.reshape(shape) * x_s + w.sqrt().reshape(shape) * eps
'''},
        "must_lose": ["q_sample_tests"],
    },
    # ---------------------------------------------------------------------------------------- C1: propagate
    "copied_from_package_propagate": {  # DDPM's closed form through the package's alpha_bars, b^2 taken as beta
        "replace": {"propagate": '''
def propagate_moments(chain, *, mean0, var0=0.0):
    """Mean and variance of x_t for every t."""
    from ddpm_scratch.schedules import NoiseSchedule

    alpha_bar = NoiseSchedule(chain.b**2).alpha_bars
    return alpha_bar.sqrt() * mean0, alpha_bar * var0 + 1 - alpha_bar
'''},
        "must_lose": ["propagate_tests"],
        "visible": True,
    },
    "variance_recursion_with_unsquared_coefficient": {  # V_t = a_t V_{t-1} + b_t^2
        "replace": {"propagate": '''
def propagate_moments(chain, *, mean0, var0=0.0):
    """Mean and variance of x_t for every t."""
    T = chain.a.numel() - 1
    mean, var = torch.empty(T + 1), torch.empty(T + 1)
    mean[0], var[0] = mean0, var0
    for t in range(1, T + 1):
        mean[t] = chain.a[t] * mean[t - 1]
        var[t] = chain.a[t] * var[t - 1] + chain.b[t] ** 2
    return mean, var
'''},
        "must_lose": ["propagate_tests"],
    },
    "variance_recursion_adds_the_standard_deviation": {  # + b_t, the noise's standard deviation, not its variance
        "replace": {"propagate": '''
def propagate_moments(chain, *, mean0, var0=0.0):
    """Mean and variance of x_t for every t."""
    T = chain.a.numel() - 1
    mean, var = torch.empty(T + 1), torch.empty(T + 1)
    mean[0], var[0] = mean0, var0
    for t in range(1, T + 1):
        mean[t] = chain.a[t] * mean[t - 1]
        var[t] = chain.a[t] ** 2 * var[t - 1] + chain.b[t]
    return mean, var
'''},
        "must_lose": ["propagate_tests"],
        "visible": True,
    },
    "propagate_ignores_var0": {  # starts from a known x_0 whatever var0 says
        "replace": {"propagate": '''
def propagate_moments(chain, *, mean0, var0=0.0):
    """Mean and variance of x_t for every t."""
    T = chain.a.numel() - 1
    mean, var = torch.empty(T + 1), torch.empty(T + 1)
    mean[0], var[0] = mean0, 0.0
    for t in range(1, T + 1):
        mean[t] = chain.a[t] * mean[t - 1]
        var[t] = chain.a[t] ** 2 * var[t - 1] + chain.b[t] ** 2
    return mean, var
'''},
        "must_lose": ["propagate_tests"],
    },
    # ---------------------------------------------------------------------------------------- C2: forward_chain
    "copied_from_package_forward_chain": {  # forward.q_step, DDPM's step sqrt(1 - beta) x + sqrt(beta) eps, beta = b^2
        "replace": {"forward_chain": '''
def forward_chain(chain, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    from ddpm_scratch.forward import q_step
    from ddpm_scratch.schedules import NoiseSchedule

    schedule = NoiseSchedule(chain.b.clamp(max=0.999) ** 2)
    x = x0
    for s in range(1, t + 1):
        x = q_step(schedule, x[None] if x.dim() == 1 else x, s, generator=generator).reshape(x.shape)
    return x
'''},
        "must_lose": ["forward_chain_tests"],
        "visible": True,
    },
    "chain_noise_scaled_by_variance": {  # noise of standard deviation b_t^2 instead of b_t
        "replace": {"forward_chain": '''
def forward_chain(chain, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        x = chain.a[s] * x + chain.b[s] ** 2 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x
'''},
        "must_lose": ["forward_chain_tests"],
    },
    "chain_noise_one_per_example": {  # noise shaped like the batch (B,), not like x: one draw shared by the coordinates
        "replace": {"forward_chain": '''
def forward_chain(chain, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        eps = torch.randn(x.shape[0], generator=generator, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        x = chain.a[s] * x + chain.b[s] * eps
    return x
'''},
        "must_lose": ["forward_chain_tests"],
    },
    "chain_ignores_generator": {  # the global generator even when one is given: a seed does not reproduce the run
        "replace": {"forward_chain": '''
def forward_chain(chain, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        x = chain.a[s] * x + chain.b[s] * torch.randn(x.shape, dtype=x.dtype)
    return x
'''},
        "must_lose": ["forward_chain_tests"],
        "visible": True,
    },
    "chain_noise_in_the_default_dtype": {  # torch.randn without dtype: float64 noise turns float32 chains into float64
        "replace": {"forward_chain": '''
def forward_chain(chain, x0, t, *, generator=None):
    """x_t after t one-step kernels."""
    x = x0
    for s in range(1, t + 1):
        x = chain.a[s] * x + chain.b[s] * torch.randn(x.shape, generator=generator)
    return x
'''},
        "must_lose": ["forward_chain_tests"],
    },
    # ---------------------------------------------------------------------------------------- C3: mc_tolerance
    "copied_from_package_mc_tolerance": {  # the package's standard error of an average, std / sqrt(n)
        # (reverse_kernel.kl_monte_carlo), also for s^2 as an average of squared deviations: large-n only
        "replace": {"mc_tolerance": '''
def mc_tolerances(var, n, *, kurtosis, k=5.0):
    """k standard errors of the sample mean and variance."""
    std_of_x = math.sqrt(var)
    std_of_squared_deviation = math.sqrt(kurtosis * var**2 - var**2)  # sqrt(E[(x - m)^4] - var^2)
    return k * std_of_x / math.sqrt(n), k * std_of_squared_deviation / math.sqrt(n)
'''},
        "must_lose": ["mc_tolerance_tests"],
        "visible": True,
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
    # ---------------------------------------------------------------------------------------- D: posterior
    "copied_from_package_posterior": {  # forward.q_posterior: one step back of DDPM's chain, whatever s is
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.forward import q_posterior as package_posterior

    mean, var = package_posterior(schedule, x_t, t, x0=x0)
    return mean, var.flatten()[0]
'''},
        "must_lose": ["posterior_tests"],
        "visible": True,
    },
    "copied_from_package_posterior_respaced": {  # the package's respacing turns the jump into one step: DDPM's only
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.forward import q_posterior as package_posterior

    jump = schedule.respace([s, t] if s > 0 else [t])
    mean, var = package_posterior(jump, x_t, jump.T, x0=x0)
    return mean, var.flatten()[0]
'''},
        "must_lose": ["posterior_tests"],
        "visible": True,
    },
    "posterior_variance_of_the_jump": {  # forgetting that x0 is known: the jump's own variance w
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    m_s, v_s, m_t, v_t = kernel.m[s], kernel.v[s], kernel.m[t], kernel.v[t]
    c = m_t / m_s
    w = v_t - c**2 * v_s
    return (w * m_s / v_t) * x0 + (c * v_s / v_t) * x_t, w
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_variance_ratio_swapped": {  # v_t / v_s * w instead of v_s / v_t * w
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    m_s, v_s, m_t, v_t = kernel.m[s], kernel.v[s], kernel.m[t], kernel.v[t]
    c = m_t / m_s
    w = v_t - c**2 * v_s
    var = v_t / v_s * w if s > 0 else torch.tensor(0.0)
    return (w * m_s / v_t) * x0 + (c * v_s / v_t) * x_t, var
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_jump_as_one_step": {  # the one-step formula with t - 1 -> s in m, v only: the last step's a_t, b_t kept
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    m_s, v_s, m_t, v_t = kernel.m[s], kernel.v[s], kernel.m[t], kernel.v[t]
    a_t = m_t / kernel.m[t - 1]
    b2_t = v_t - a_t**2 * kernel.v[t - 1]
    return (b2_t * m_s / v_t) * x0 + (a_t * v_s / v_t) * x_t, v_s * b2_t / v_t
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_jump_coefficient_squared": {  # c^2 = (m_t / m_s)^2 multiplies x_t (for DDPM: abar_t / abar_s, no sqrt)
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    m_s, v_s, m_t, v_t = kernel.m[s], kernel.v[s], kernel.m[t], kernel.v[t]
    c = m_t / m_s
    w = v_t - c**2 * v_s
    return (w * m_s / v_t) * x0 + (c**2 * v_s / v_t) * x_t, v_s * w / v_t
'''},
        "must_lose": ["posterior_tests"],
    },
    "posterior_ddpm_formula_with_m_squared": {  # the lesson's DDPM formula, alpha_bar = m^2 and 1 - alpha_bar for v
        "replace": {"posterior": '''
def q_posterior(kernel, x_t, t, *, x0, s):
    """Mean and variance of q(x_s | x_t, x0)."""
    ab_s, ab_t = kernel.m[s] ** 2, kernel.m[t] ** 2
    a_jump = ab_t / ab_s
    mean = ab_s.sqrt() * (1 - a_jump) / (1 - ab_t) * x0 + a_jump.sqrt() * (1 - ab_s) / (1 - ab_t) * x_t
    return mean, (1 - ab_s) / (1 - ab_t) * (1 - a_jump)
'''},
        "must_lose": ["posterior_tests"],
    },
    # ---------------------------------------------------------------------------------------- E1: gaussian_kl
    "copied_from_package_gaussian_kl": {  # losses.gaussian_kl, per coordinate: the diagonals only, correlations lost
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, cov1, mean2, cov2):
    """KL divergence between two Gaussians."""
    from ddpm_scratch.losses import gaussian_kl as per_coordinate

    var1, var2 = cov1.diagonal(dim1=-2, dim2=-1), cov2.diagonal(dim1=-2, dim2=-1)
    return per_coordinate(mean1, var1, mean2, var2).sum(dim=-1)
'''},
        "must_lose": ["gaussian_kl_tests"],
        "visible": True,
    },
    "kl_arguments_reversed": {  # KL(N2 || N1): the expectation taken under the wrong Gaussian
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, cov1, mean2, cov2):
    """KL divergence between two Gaussians."""
    D = mean1.shape[-1]
    diff = (mean1 - mean2).unsqueeze(-1)
    trace = torch.linalg.solve(cov1, cov2).diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    mahalanobis = (diff * torch.linalg.solve(cov1, diff)).sum(dim=(-2, -1))
    return 0.5 * (trace + mahalanobis - D + torch.logdet(cov1) - torch.logdet(cov2))
'''},
        "must_lose": ["gaussian_kl_tests"],
    },
    "kl_log_determinants_without_half": {  # log(det S2 / det S1) not halved (log-variances taken for log-stds)
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, cov1, mean2, cov2):
    """KL divergence between two Gaussians."""
    D = mean1.shape[-1]
    diff = (mean2 - mean1).unsqueeze(-1)
    trace = torch.linalg.solve(cov2, cov1).diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    mahalanobis = (diff * torch.linalg.solve(cov2, diff)).sum(dim=(-2, -1))
    return 0.5 * (trace + mahalanobis - D) + torch.logdet(cov2) - torch.logdet(cov1)
'''},
        "must_lose": ["gaussian_kl_tests"],
    },
    "kl_mean_term_with_the_first_covariance": {  # (mu1 - mu2)^T Sigma_1^{-1} (mu1 - mu2)
        "replace": {"gaussian_kl": '''
def gaussian_kl(mean1, cov1, mean2, cov2):
    """KL divergence between two Gaussians."""
    D = mean1.shape[-1]
    diff = (mean2 - mean1).unsqueeze(-1)
    trace = torch.linalg.solve(cov2, cov1).diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    mahalanobis = (diff * torch.linalg.solve(cov1, diff)).sum(dim=(-2, -1))
    return 0.5 * (trace + mahalanobis - D + torch.logdet(cov2) - torch.logdet(cov1))
'''},
        "must_lose": ["gaussian_kl_tests"],
    },
    # ---------------------------------------------------------------------------------------- E2: prior_bpd
    "copied_from_package_prior_bpd": {  # losses.prior_bpd: DDPM's v_T = 1 - m_T^2 and the prior N(0, I), always
        "replace": {"prior_bpd": '''
def prior_bits_per_dim(kernel, x0, *, prior_var=1.0):
    """L_T per example."""
    from ddpm_scratch.losses import prior_bpd
    from ddpm_scratch.schedules import NoiseSchedule

    return prior_bpd(NoiseSchedule.from_betas([1 - kernel.m[-1].item() ** 2]), x0)
'''},
        "must_lose": ["prior_bpd_tests"],
        "visible": True,
    },
    "prior_in_nats": {  # the KL left in nats: bits/dim needs the division by ln 2
        "replace": {"prior_bpd": '''
def prior_bits_per_dim(kernel, x0, *, prior_var=1.0):
    """L_T per example."""
    x = x0.double().flatten(1)
    m, v = kernel.m[-1], kernel.v[-1]
    return (0.5 * (math.log(prior_var) - torch.log(v) + (v + (m * x) ** 2) / prior_var - 1)).mean(dim=1)
'''},
        "must_lose": ["prior_bpd_tests"],
    },
    "prior_ignores_prior_var": {  # the standard normal prior whatever prior_var says
        "replace": {"prior_bpd": '''
def prior_bits_per_dim(kernel, x0, *, prior_var=1.0):
    """L_T per example."""
    x = x0.double().flatten(1)
    m, v = kernel.m[-1], kernel.v[-1]
    return (0.5 * (-torch.log(v) + v + (m * x) ** 2 - 1)).mean(dim=1) / math.log(2)
'''},
        "must_lose": ["prior_bpd_tests"],
    },
    "prior_in_float32": {  # computed in the data's float32: 1 - alpha_bar_T rounds to 1, L_T to 0 (lesson 1)
        "replace": {"prior_bpd": '''
def prior_bits_per_dim(kernel, x0, *, prior_var=1.0):
    """L_T per example."""
    x = x0.flatten(1)
    m, v = kernel.m[-1].to(x.dtype), kernel.v[-1].to(x.dtype)
    kl = 0.5 * (math.log(prior_var) - torch.log(v) + (v + (m * x) ** 2) / prior_var - 1)
    return kl.mean(dim=1).double() / math.log(2)
'''},
        "must_lose": ["prior_bpd_tests"],
    },
    # ---------------------------------------------------------------------------------------- F: drowning
    "copied_from_package_drowning": {  # the package's SNR(t) (frequency_snr: alpha_bar P / (1 - alpha_bar)), DDPM's
        "replace": {"drowning": '''
def drowning_step(power, kernel):
    """First t with SNR_k(t) < 1."""''' + _VP_SCHEDULE + '''
    T = schedule.T
    snr = schedule.snr(torch.arange(1, T + 1))[:, None] * power[None, :]
    below = snr < 1
    first = below.to(torch.uint8).argmax(dim=0) + 1
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
        "visible": True,
    },
    "drowning_step_off_by_one": {  # the position in m[1:] returned as if it were t
        "replace": {"drowning": '''
def drowning_step(power, kernel):
    """First t with SNR_k(t) < 1."""
    T = kernel.m.numel() - 1
    below = kernel.m[1:, None] ** 2 * power[None, :] / kernel.v[1:, None] < 1
    first = below.to(torch.uint8).argmax(dim=0)
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
        "visible": True,
    },
    "drowning_step_at_or_below": {  # SNR <= 1 instead of < 1: a frequency whose SNR is exactly 1 counted as drowned
        "replace": {"drowning": '''
def drowning_step(power, kernel):
    """First t with SNR_k(t) < 1."""
    T = kernel.m.numel() - 1
    below = kernel.m[1:, None] ** 2 * power[None, :] / kernel.v[1:, None] <= 1
    first = below.to(torch.uint8).argmax(dim=0) + 1
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
    },
    "drowning_snr_with_unsquared_mean": {  # m_t P_k / v_t: the signal's amplitude against the noise's power
        "replace": {"drowning": '''
def drowning_step(power, kernel):
    """First t with SNR_k(t) < 1."""
    T = kernel.m.numel() - 1
    below = kernel.m[1:, None] * power[None, :] / kernel.v[1:, None] < 1
    first = below.to(torch.uint8).argmax(dim=0) + 1
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
'''},
        "must_lose": ["drowning_tests"],
    },
}
