"""Plausible wrong submissions of ps6_discrete, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The entries "copied_from_package_<cell>" are what a student gets by calling or transcribing the nearest function of
the shipped package (`ddpm_scratch.discrete`), which puts the absorbing kernel's mask last, computes q(x_t | x0) from
step 0 only, mixes the posteriors (not the joints) with the network's probabilities and averages the bound over the
positions in float32: each must lose its cell's points.
"""

# ------------------------------------------------------------------------------------------------ Part A
_STATIONARY = '''
def stationary_law(kind, K):
    """pi, the mask at state 0."""
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "uniform":
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    return torch.eye(K + 1, dtype=torch.float64)[0]
'''

_STACK = '''

def transition_stack(process):
    """Q_0 = I, Q_1, ..., Q_T."""
    law = stationary_law(process.kind, process.K)
    b = process.betas.double()[:, None, None]'''  # + the return

_EYE = "torch.eye(law.numel(), dtype=torch.float64)"

# ------------------------------------------------------------------------------------------------ Part B
_JUMP = '''
def jump_matrix(process, s, t):
    """Q_{s+1} ... Q_t."""
    if not 0 <= s <= t <= process.T:
        raise ValueError(f"need 0 <= s <= t <= T, got s = {s}, t = {t}")
    law = stationary_law(process.kind, process.K)
    betas = process.betas.double()'''  # + keep and the return

_JUMP_BACK = '''
    return keep * torch.eye(law.numel(), dtype=torch.float64) + (1 - keep) * law.expand(law.numel(), -1)
'''

# ------------------------------------------------------------------------------------------------ Part C
# A hand-written eq. 4 in closed forms: column x_t of Q_t is (1 - beta_t) [i = x_t] + beta_t pi[x_t], and
# p Qbar_{t-1} = alpha_bar_{t-1} p + (1 - alpha_bar_{t-1}) (sum p) pi
_REVERSE = '''
def reverse_step(process, x_t, t, *, x0):
    """D3PM's eq. 4 (Bayes' posterior for states)."""
    n, B = process.num_states, x_t.shape[0]
    if x0.dtype == torch.long:
        weights, dtype = torch.nn.functional.one_hot(x0, n).double(), torch.float64
    else:
        weights, dtype = x0.double(), x0.dtype
    pi = stationary_law(process.kind, process.K)
    betas = process.betas.double()
    abar = torch.cumprod(1 - betas, 0)
    shape = (B,) + (1,) * x_t.dim()'''

_STEPS = '''
    steps = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(B)'''

_COLUMN = '''
    keep = (1 - betas[steps]).reshape(shape)
    before = abar[steps - 1].reshape(shape)
    likelihood = keep * torch.nn.functional.one_hot(x_t, n) + (1 - keep) * pi[x_t][..., None]'''

_PRIOR = '''
    prior = before * weights + (1 - before) * weights.sum(-1, keepdim=True) * pi
    joint = likelihood * prior'''

_NORMALISED = '''
    return (joint / joint.sum(-1, keepdim=True)).to(dtype)
'''

_MASK_LAST = '''pi = torch.full((n,), 1.0 / process.K, dtype=torch.float64)
    if process.kind == "absorbing":
        pi = torch.eye(n, dtype=torch.float64)[-1]'''

# ------------------------------------------------------------------------------------------------ Part D
_BOUND = '''
def bound_term(process, x_t, t, *, x0, x0_probs):
    """L_{t-1}, summed over the positions."""
    q = reverse_step(process, x_t, t, x0=x0)
    p = reverse_step(process, x_t, t, x0=x0_probs.double())'''

_KL = '''
    kl = torch.xlogy(q, q) - torch.xlogy(q, p)'''

_SUMMED = '''
    return kl.reshape(x_t.shape[0], -1).sum(1).to(x0_probs.dtype)
'''

MISTAKES = {
    # ------------------------------------------------------------------------------------------------ Part A
    "copied_from_package_transitions": {  # the package's transition and stationary: the mask is the LAST state, and
        # "gaussian" is a kind there
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """The package's law."""
    from ddpm_scratch.discrete import stationary

    return stationary(kind, K)


def transition_stack(process):
    """The package's one-step matrices, stacked."""
    from ddpm_scratch.discrete import transition

    return torch.stack([transition(process.kind, float(b), process.K) for b in process.betas])
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_mask_last": {  # written by hand, with the mask at index K as in the lesson
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """pi."""
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "uniform":
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    return torch.eye(K + 1, dtype=torch.float64)[K]
''' + _STACK + f'''
    return (1 - b) * {_EYE} + b * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_transposed": {  # pi as a column: Q^T, whose columns (not rows) are distributions
        "replace": {"transitions": _STATIONARY + _STACK + f'''
    return (1 - b) * {_EYE} + b * law[:, None]
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_off_by_one": {  # Q_t built from beta_{t-1}: the schedule shifted by one step
        "replace": {"transitions": _STATIONARY + _STACK + f'''
    b = torch.cat([torch.zeros(1, 1, 1), b[:-1]])
    return (1 - b) * {_EYE} + b * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_keep_with_beta": {  # beta_t and 1 - beta_t swapped: the state is kept with probability beta_t
        "replace": {"transitions": _STATIONARY + _STACK + f'''
    return b * {_EYE} + (1 - b) * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_absorbing_redraws_uniformly": {  # the absorbing kernel as uniform noise over the K + 1 states
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """pi."""
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"unknown kind {kind!r}")
    n = K + (kind == "absorbing")
    return torch.full((n,), 1.0 / n, dtype=torch.float64)
''' + _STACK + f'''
    return (1 - b) * {_EYE} + b * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_no_kind_check": {  # any kind but "absorbing" taken for the uniform kernel
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """pi."""
    if kind == "absorbing":
        return torch.eye(K + 1, dtype=torch.float64)[0]
    return torch.full((K,), 1.0 / K, dtype=torch.float64)
''' + _STACK + f'''
    return (1 - b) * {_EYE} + b * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_in_float32": {  # torch.eye and the law in float32: the stack is float32
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """pi."""
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "uniform":
        return torch.full((K,), 1.0 / K, dtype=torch.float32)
    return torch.eye(K + 1, dtype=torch.float32)[0]


def transition_stack(process):
    """Q_0 = I, Q_1, ..., Q_T."""
    law = stationary_law(process.kind, process.K)
    b = process.betas.float()[:, None, None]
    return (1 - b) * torch.eye(law.numel(), dtype=torch.float32) + b * law
'''},
        "must_lose": ["transitions_tests"],
        "visible": True,
    },
    "transitions_law_in_float32": {  # only pi in float32 (the stack is promoted back to float64): the visible tests
        # do not look at pi's dtype, the hidden ones do
        "replace": {"transitions": '''
def stationary_law(kind, K):
    """pi."""
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "uniform":
        return torch.full((K,), 1.0 / K, dtype=torch.float32)
    return torch.eye(K + 1, dtype=torch.float32)[0]
''' + _STACK + f'''
    return (1 - b) * {_EYE} + b * law
'''},
        "must_lose": ["transitions_tests"],
    },
    # ------------------------------------------------------------------------------------------------ Part B
    "copied_from_package_jump": {  # the package's cumulative: Qbar_t from step 0 whatever s, the mask last
        "replace": {"jump": '''
def jump_matrix(process, s, t):
    """The package's Qbar_t."""
    from ddpm_scratch.discrete import cumulative

    if not 0 <= s <= t <= process.T:
        raise ValueError(f"need 0 <= s <= t <= T, got s = {s}, t = {t}")
    return cumulative(process.kind, process.betas, process.K)[t]
'''},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_ratio_of_cumulative_products": {  # alpha_bar_t / alpha_bar_s: 0/0 once a beta = 1 has passed (and once
        # alpha_bar underflows)
        "replace": {"jump": _JUMP + '''
    abar = torch.cumprod(1 - betas, 0)
    keep = abar[t] / abar[s]''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_ratio_patched": {  # the ratio, with 0/0 replaced by 0: a step after the forgetting one is lost too
        "replace": {"jump": _JUMP + '''
    abar = torch.cumprod(1 - betas, 0)
    keep = torch.where(abar[s] > 0, abar[t] / abar[s], torch.zeros(()))''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_log_domain_difference": {  # exp of a difference of running sums of log(1 - beta): inf - inf after beta = 1
        "replace": {"jump": _JUMP + '''
    logs = torch.cumsum(torch.log1p(-betas), 0)
    keep = torch.exp(logs[t] - logs[s])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_ignores_s": {  # alpha_bar_t: the jump from step 0
        "replace": {"jump": _JUMP + '''
    keep = torch.prod(1 - betas[1:t + 1])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_off_by_one": {  # the steps s..t-1 instead of s+1..t
        "replace": {"jump": _JUMP + '''
    keep = torch.prod(1 - betas[s:t])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_last_step_only": {  # 1 - beta_t: alpha where alpha_bar belongs, one step for the whole jump
        "replace": {"jump": _JUMP + '''
    keep = 1 - betas[t] if t > s else torch.ones(())''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_mask_last": {  # written by hand, with the mask at index K
        "replace": {"jump": '''
def jump_matrix(process, s, t):
    """Q_{s+1} ... Q_t, the mask last."""
    if not 0 <= s <= t <= process.T:
        raise ValueError(f"need 0 <= s <= t <= T, got s = {s}, t = {t}")
    n = process.num_states
    law = torch.full((n,), 1.0 / process.K, dtype=torch.float64)
    if process.kind == "absorbing":
        law = torch.eye(n, dtype=torch.float64)[-1]
    keep = torch.prod(1 - process.betas.double()[s + 1:t + 1])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_no_range_check": {  # s > t gives the empty product, the identity, silently
        "replace": {"jump": '''
def jump_matrix(process, s, t):
    """Q_{s+1} ... Q_t."""
    law = stationary_law(process.kind, process.K)
    keep = torch.prod(1 - process.betas.double()[s + 1:t + 1])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    "jump_t_beyond_T": {  # 0 <= s <= t checked, t <= T not: the slice stops at T and t = T + 1 passes
        "replace": {"jump": '''
def jump_matrix(process, s, t):
    """Q_{s+1} ... Q_t."""
    if not 0 <= s <= t:
        raise ValueError(f"need 0 <= s <= t, got s = {s}, t = {t}")
    law = stationary_law(process.kind, process.K)
    keep = torch.prod(1 - process.betas.double()[s + 1:t + 1])''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
    },
    "jump_in_float32": {  # the product taken in float32
        "replace": {"jump": _JUMP + '''
    keep = torch.prod(1 - betas[s + 1:t + 1].float()).double()''' + _JUMP_BACK},
        "must_lose": ["jump_tests"],
        "visible": True,
    },
    # ------------------------------------------------------------------------------------------------ Part C
    "copied_from_package_reverse": {  # the package's q_posterior: the mixture of posteriors, the mask last, float32
        "replace": {"reverse": '''
def reverse_step(process, x_t, t, *, x0):
    """The package's posterior."""
    from ddpm_scratch.discrete import CategoricalDiffusion, q_posterior

    chain = CategoricalDiffusion(process.kind, process.K, process.betas)
    return q_posterior(chain, x_t, t, x0=x0).double()
'''},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_package_relabelled": {  # the package's q_posterior with the states renumbered to its convention and
        # back: the mask is right, but it is still the mixture of posteriors, in float32
        "replace": {"reverse": '''
def reverse_step(process, x_t, t, *, x0):
    """The package's posterior, the mask moved."""
    from ddpm_scratch.discrete import CategoricalDiffusion, q_posterior

    chain = CategoricalDiffusion(process.kind, process.K, process.betas)
    dtype = torch.float64 if x0.dtype == torch.long else x0.dtype
    if process.kind == "absorbing":  # here: mask 0, data 1..K; there: data 0..K-1, mask K
        x_t = (x_t - 1) % (process.K + 1)
        x0 = x0 - 1 if x0.dtype == torch.long else x0[..., 1:]
    out = q_posterior(chain, x_t, t, x0=x0)
    if process.kind == "absorbing":
        out = torch.cat([out[..., -1:], out[..., :-1]], -1)
    return out.to(dtype)
'''},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_mixture_of_posteriors": {  # written by hand in float64: sum_x0 p~(x0) q(x_{t-1} | x_t, x0), lesson 6's
        # form, which drops eq. 4's weight q(x_t | x0) (the two differ for the uniform kernel)
        "replace": {"reverse": _REVERSE + _STEPS + _COLUMN + '''
    now = abar[steps].reshape(shape)
    reach = now * torch.nn.functional.one_hot(x_t, n) + (1 - now) * pi[x_t][..., None]  # q(x_t | x0), per x0
    weights = torch.where(reach > 0, weights / reach.clamp_min(1e-300), torch.zeros(()))''' + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_row_not_column": {  # row x_t of Q_t (x_t Q_t) where the column belongs (x_t Q_t^T): for the symmetric
        # uniform kernel the same, for the absorbing one not
        "replace": {"reverse": _REVERSE + _STEPS + '''
    keep = (1 - betas[steps]).reshape(shape)
    before = abar[steps - 1].reshape(shape)
    likelihood = keep * torch.nn.functional.one_hot(x_t, n) + (1 - keep) * pi''' + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_q_bar_t": {  # x0 Qbar_t where x0 Qbar_{t-1} belongs: the law of x_t, not of x_{t-1}
        "replace": {"reverse": _REVERSE + _STEPS + '''
    keep = (1 - betas[steps]).reshape(shape)
    before = abar[steps].reshape(shape)
    likelihood = keep * torch.nn.functional.one_hot(x_t, n) + (1 - keep) * pi[x_t][..., None]''' + _PRIOR
                    + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_unnormalised": {  # the joint returned as it is, without the division by its sum over x_{t-1}
        "replace": {"reverse": _REVERSE + _STEPS + _COLUMN + _PRIOR + '''
    return joint.to(dtype)
'''},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_first_step_for_all": {  # t[0] for the whole batch: right for an int t, wrong per example
        "replace": {"reverse": _REVERSE + '''
    steps = torch.as_tensor(t, dtype=torch.long).reshape(-1)[:1].expand(B)''' + _COLUMN + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_int_t_only": {  # int(t): a (B,) tensor of steps raises
        "replace": {"reverse": _REVERSE + '''
    steps = torch.full((B,), int(t), dtype=torch.long)''' + _COLUMN + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_always_float64": {  # float32 probabilities give a float64 result
        "replace": {"reverse": _REVERSE + _STEPS + _COLUMN + _PRIOR + '''
    return joint / joint.sum(-1, keepdim=True)
'''},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_mask_last": {  # written by hand with the mask at index K (the lesson's convention)
        "replace": {"reverse": _REVERSE.replace("pi = stationary_law(process.kind, process.K)", _MASK_LAST) + _STEPS
                    + _COLUMN + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
        "visible": True,
    },
    "reverse_sequences_only": {  # shaped for (B, D): images (B, H, W) do not broadcast
        "replace": {"reverse": _REVERSE.replace("shape = (B,) + (1,) * x_t.dim()", "shape = (B, 1, 1)") + _STEPS
                    + _COLUMN + _PRIOR + _NORMALISED},
        "must_lose": ["reverse_tests"],
    },
    # ------------------------------------------------------------------------------------------------ Part D
    "copied_from_package_bound": {  # the package's vb_term with the probabilities as the model's output: the mean
        # over the positions, the mixture of posteriors, the mask last, float32
        "replace": {"bound": '''
def bound_term(process, x_t, t, *, x0, x0_probs):
    """The package's L_{t-1}."""
    from ddpm_scratch.discrete import CategoricalDiffusion, vb_term

    chain = CategoricalDiffusion(process.kind, process.K, process.betas)
    logits = x0_probs.clamp_min(1e-30).log()
    return vb_term(lambda x, s: logits, chain, x0, x_t, t).to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_mean_over_positions": {  # nats per position (the package's unit), not per sequence
        "replace": {"bound": _BOUND + _KL + '''
    return kl.reshape(x_t.shape[0], -1).mean(1).to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_kl_reversed": {  # KL(p || q): infinite where the posterior has no mass and the model has some
        "replace": {"bound": _BOUND + '''
    kl = torch.xlogy(p, p) - torch.xlogy(p, q)''' + _SUMMED},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_in_bits": {  # log base 2
        "replace": {"bound": _BOUND + _KL + '''
    return (kl.reshape(x_t.shape[0], -1).sum(1) / math.log(2)).to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_zero_log_zero_is_nan": {  # q log(q / p) as written: 0 * log 0 is nan where the posterior has no mass
        "replace": {"bound": _BOUND + '''
    kl = q * (q / p).log()''' + _SUMMED},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_decoder_reads_x0_probs": {  # L_0 = -log p~(x0 | x_1): the network's probabilities taken for the
        # model's reverse step at t = 1 (true for a masked position, not for the uniform kernel)
        "replace": {"bound": _BOUND + _KL + '''
    B = x_t.shape[0]
    first = (torch.as_tensor(t).reshape(-1).expand(B) == 1)
    decoder = -x0_probs.double().gather(-1, x0[..., None]).log().reshape(B, -1).sum(1)
    return torch.where(first, decoder, kl.reshape(B, -1).sum(1)).to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_against_x0_probs": {  # KL of the posterior over x_{t-1} from p~ over x0: the reverse step skipped
        "replace": {"bound": '''
def bound_term(process, x_t, t, *, x0, x0_probs):
    """L_{t-1}, summed over the positions."""
    q = reverse_step(process, x_t, t, x0=x0)
    p = x0_probs.double()''' + _KL + _SUMMED},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_summed_over_the_batch": {  # one number for the whole batch
        "replace": {"bound": _BOUND + _KL + '''
    return kl.sum().to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_mixture_of_posteriors": {  # the model's step as lesson 6's mixture of posteriors, written here: right for
        # the absorbing kernel, not for the uniform one (and the bound of the exact model is then not tight)
        "replace": {"bound": '''
def _mixture(process, x_t, t, probs):
    """sum_x0 p~(x0) q(x_{t-1} | x_t, x0), renormalised over the x0 that reach x_t."""
    n, B = process.num_states, x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(B)
    shape = (B,) + (1,) * x_t.dim()
    pi = stationary_law(process.kind, process.K)
    betas = process.betas.double()
    abar = torch.cumprod(1 - betas, 0)
    one_hot = torch.nn.functional.one_hot(x_t, n)
    keep, now = (1 - betas[steps]).reshape(shape), abar[steps].reshape(shape)
    before = abar[steps - 1].reshape(shape)
    likelihood = keep * one_hot + (1 - keep) * pi[x_t][..., None]
    reach = now * one_hot + (1 - now) * pi[x_t][..., None]
    weights = torch.where(reach > 0, probs / reach.clamp_min(1e-300), torch.zeros(()))
    joint = likelihood * (before * weights + (1 - before) * weights.sum(-1, keepdim=True) * pi)
    return joint / joint.sum(-1, keepdim=True)


def bound_term(process, x_t, t, *, x0, x0_probs):
    """L_{t-1}, summed over the positions."""
    q = reverse_step(process, x_t, t, x0=x0)
    p = _mixture(process, x_t, t, x0_probs.double())''' + _KL + _SUMMED},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_always_float64": {  # float32 probabilities give a float64 result
        "replace": {"bound": _BOUND + _KL + '''
    return kl.reshape(x_t.shape[0], -1).sum(1)
'''},
        "must_lose": ["bound_tests"],
        "visible": True,
    },
    "bound_sequences_only": {  # the sum over dimension 1 only: right for (B, D), not for images (B, H, W)
        "replace": {"bound": _BOUND + _KL + '''
    return kl.sum(-1).sum(1).to(x0_probs.dtype)
'''},
        "must_lose": ["bound_tests"],
    },
}
