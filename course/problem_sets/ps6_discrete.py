# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 6 — Discrete-state diffusion: transition matrices, jumps, D3PM's reverse step, the bound
#
# A word of a text, a segmentation label or a pixel of a small palette is a category. Gaussian noise has no meaning for
# it: a category plus noise is no category. D3PM (Austin et al. 2021) corrupts categories with a Markov chain on the
# categories themselves. At step $t$ a token jumps from state $i$ to state $j$ with probability $[\mathbf{Q}_t]_{ij}$;
# after enough steps its state no longer remembers where it started, and the reverse process, learnt by a network,
# undoes the jumps one step at a time. Every distribution here lives on a finite set, so every claim of the lecture can
# be checked exactly, by summing over the states: no sampling, no Monte Carlo error bars.
#
# Lesson 6 and the course package `ddpm_scratch` build the uniform and the absorbing kernel with the mask as the *last*
# state, compute $q(x_t \mid x_0)$ from step 0 only, and let the network's probabilities weight the exact posteriors (a
# mixture of posteriors). This problem set takes the roads the package does not: the mask as state **0** (the front of
# the vocabulary, where many tokenisers keep their special tokens), the jump from any step $s$ to any later step $t$,
# the reverse step in the form of D3PM's equation 4 (which weights the *joint* $q(x_{t-1}, x_t \mid x_0)$, not the
# posterior), and the bound's term summed over the positions of a sequence. The hidden tests prove numerically that rows
# of the matrices are distributions, that your jumps are the products of the one-step matrices, that $q(x_T)$ reaches
# the stationary law, that your reverse step is Bayes' rule by brute-force enumeration, and that your bound's terms are
# the KL divergences computed another way:
#
# | part | what you show | points |
# |---|---|---|
# | A | the one-step matrices of a whole schedule, the mask at state 0, and the law the chain settles to | 3 |
# | B | the jump from step $s$ to step $t$ in closed form: the product of the one-step matrices | 4 |
# | C | D3PM's reverse step with predicted $x_0$ probabilities (eq. 4); Bayes' posterior for a known $x_0$ | 5 |
# | D | one term of the variational bound, in nats per sequence | 4 |
# | E | why jumps stay in the family; absorbing diffusion is a masked-token loss; two reverse steps (by hand) | 4 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones check
# your answer on inputs where the usual slips give other numbers and say what they expected and what came; hidden
# ones run at grading time, over every type and shape a part allows, and compare your functions with independent
# computations (matrices written entry by entry from the definition, products of them, Bayes' rule by plain loops
# over the states, `torch.distributions`). Write your answers with `torch` and `math`; do not import `ddpm_scratch`
# (its functions answer other questions, with the mask elsewhere: the hidden tests tell them apart). You may use your
# answers to earlier parts in later ones. You may add cells of your own to experiment: grading runs them too but
# scores only the answer cells, so keep them quick (and do not copy, delete or re-create the given cells).
#
# **Conventions.** States are one-hot **row** vectors, and $[\mathbf{Q}_t]_{ij} = q(x_t = j \mid x_{t-1} = i)$:
# row $i$ of $\mathbf{Q}_t$ is the law of the next state from state $i$, so every row sums to 1 and the law of
# $x_t$ is $\mathbf{x}_{t-1}\mathbf{Q}_t$. As in the other problem sets, arrays over time have length $T+1$, index
# $t$ is the lecture's $t$ and index 0 is the data: `betas[0] = 0`, and $\beta_t \in (0, 1]$ for $t = 1..T$. The
# value 1 is allowed: such a step forgets the state entirely (D3PM's absorbing schedule ends with one). A process is
# a `Process(kind, K, betas)` (setup cell) with `kind` either `"uniform"` or `"absorbing"`, $K \ge 2$ data categories
# and `betas` a float64 tensor of shape `(T+1,)`, $T \ge 1$. The states are numbered as follows:
#
# | kind | states $K'$ | the data's states | the mask |
# |---|---|---|---|
# | `"uniform"` | $K$: $0..K-1$ | all of them | none |
# | `"absorbing"` | $K+1$: $0..K$ | $1..K$ | state 0 (`MASK`) |
#
# Batches of states are `torch.long` tensors of shape `(B, ...)`: `(B, D)` sequences of $D$ positions or `(B, H, W)`
# images, $B \ge 1$. Probabilities over the states carry them in a new last axis, `(B, ..., K')`. A step `t` is a
# Python `int` (one step for the whole batch) or a `(B,)` tensor of dtype `torch.long` (one per example), in $1..T$.
# The notebook computes in float64.
#
# **Notation.** $K$ is the number of data categories and $K'$ the number of states. $\bar\alpha_t = \prod_{r=1}^t
# (1-\beta_r)$, and for a jump from step $s$ to step $t \ge s$, $\bar\alpha_{t|s} = \prod_{r=s+1}^{t}(1-\beta_r)$ (so
# $\bar\alpha_{t|0} = \bar\alpha_t$ and $\bar\alpha_{t|t} = 1$). $\bar{\mathbf{Q}}_{t|s} = \mathbf{Q}_{s+1} \cdots
# \mathbf{Q}_t$ is the jump's matrix and $\bar{\mathbf{Q}}_t = \bar{\mathbf{Q}}_{t|0}$, with $\bar{\mathbf{Q}}_0 =
# \mathbf{I}$. $\boldsymbol\pi$ is a row vector, the law the chain settles to, and $\mathbf{1}$ a column of ones. $q$ is
# always the forward process ($q(x_0)$ is the data's law), $p$ the model's reverse process, and $\tilde p(x_0 \mid X_t)$
# the network's probabilities over $x_0$ (the keywords `x0` and `x0_probs`). One position's state at step $t$ is $x_t$,
# its one-hot row $\mathbf{x}_t$, and $X_t$ stands for all the positions of an example.
#
# **Calling convention** (the course package's): the process, the state and the step come first, positionally;
# whatever stands for $x_0$ is keyword-only, e.g. `reverse_step(process, x_t, 3, x0=probs)`. Both are tensors over
# the same positions, and a keyword cannot be swapped silently.
#
# The setup cell gives you `Process`, its constructors `process_from_betas(kind, K, betas)` (from $\beta_1..\beta_T$),
# `absorbing_process(K, T)` (D3PM's schedule for the absorbing kernel, $\beta_t = 1/(T-t+1)$) and
# `uniform_process(K, T)` (D3PM's cosine schedule for the uniform kernel), and `MASK = 0`.

# %% id="setup"
import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from torch import Tensor

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other

MASK = 0  # the absorbing kernel's mask: state 0; the data are states 1..K


class Process(NamedTuple):
    """A discrete forward process: the kernel, K data categories, beta_0..beta_T (index t is the lecture's t)."""

    kind: str  # "uniform" or "absorbing"
    K: int  # the number of data categories
    betas: Tensor  # (T+1,) float64, betas[0] = 0, betas[1..T] in (0, 1]

    @property
    def T(self) -> int:
        return self.betas.numel() - 1

    @property
    def num_states(self) -> int:
        """K' = K for the uniform kernel, K + 1 (the mask and the K categories) for the absorbing one."""
        return self.K + (self.kind == "absorbing")


def process_from_betas(kind: str, K: int, betas: Tensor) -> Process:
    """The process with beta_1..beta_T = betas (a (T,) tensor in (0, 1]); index 0 is the data."""
    return Process(kind, K, torch.cat([torch.zeros(1), betas.to(torch.float64)]))


def absorbing_process(K: int, T: int) -> Process:
    """D3PM's choice for the absorbing kernel: beta_t = 1 / (T - t + 1), so beta_T = 1."""
    steps = torch.arange(1, T + 1, dtype=torch.float64)
    return process_from_betas("absorbing", K, 1 / (T - steps + 1))


def uniform_process(K: int, T: int) -> Process:
    """D3PM's cosine schedule for the uniform kernel: f(t) = cos((t/T + 0.008) / 1.008 * pi / 2) (not squared),
    beta_t = min(1 - f(t) / f(t-1), 0.999)."""
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + 0.008) / 1.008 * math.pi / 2)
    return process_from_betas("uniform", K, (1 - f[1:] / f[:-1]).clamp(max=0.999))


# %% [markdown] id="part_a"
# ## Part A — the one-step matrices of a schedule (3 points)
#
# Both kernels of this problem set do the same thing at step $t$: with probability $1 - \beta_t$ the state is kept,
# otherwise it is replaced by a fresh draw from a fixed law $\boldsymbol\pi$ over the states (which may draw the old
# state again). In matrices,
#
# $$\mathbf{Q}_t = (1 - \beta_t)\,\mathbf{I} + \beta_t\,\mathbf{1}\boldsymbol\pi .$$
#
# For the uniform kernel $\boldsymbol\pi$ puts $1/K$ on each category; for the absorbing kernel it puts everything on
# the mask, state 0: a token either keeps its category or is masked, and a masked token stays masked. Write
# `stationary_law(kind, K)`, which returns $\boldsymbol\pi$, and `transition_stack(process)`, which returns every
# $\mathbf{Q}_t$ of the schedule at once, stacked so that index $t$ is step $t$ and index 0 holds the identity
# ($\beta_0 = 0$: the data stay the data). The first function's name says what $\boldsymbol\pi$ is: a step leaves
# it unchanged, $\boldsymbol\pi\mathbf{Q}_t = \boldsymbol\pi$, and it is the law the chain settles to. Both
# functions raise a `ValueError` whose message names `kind` when `kind` is neither `"uniform"` nor `"absorbing"`.
#
# *Your functions must accept:* `kind` a string, `K` an int $\ge 2$ (up to a few hundred); `process` a `Process`
# (conventions above) with $T \ge 1$ (up to a thousand) and any $\beta_t \in (0, 1]$. *They return* float64
# tensors: $\boldsymbol\pi$ of shape `(K',)`, the stack of shape `(T+1, K', K')`.

# %% id="transitions" kind="solution"
def stationary_law(kind: str, K: int) -> Tensor:
    """pi (K',) float64: uniform over the K categories, or all mass on the mask (state 0) for the absorbing kernel."""
    ### BEGIN SOLUTION
    if kind not in ("uniform", "absorbing"):
        raise ValueError(f"kind must be 'uniform' or 'absorbing', got {kind!r}")
    if kind == "uniform":
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    law = torch.zeros(K + 1, dtype=torch.float64)
    law[MASK] = 1.0  # every category leaks into the mask, and the mask keeps what it gets
    return law
    ### END SOLUTION


def transition_stack(process: Process) -> Tensor:
    """(T+1, K', K') float64: entry [t] is Q_t, with Q_t[i, j] = q(x_t = j | x_{t-1} = i); entry [0] is the identity."""
    ### BEGIN SOLUTION
    law = stationary_law(process.kind, process.K)  # checks the kind too
    redraw = process.betas.to(torch.float64)[:, None, None]  # (T+1, 1, 1): the chance of a fresh draw at each step
    # keep the row's own state with probability 1 - beta_t, else draw the next state from pi (a row, shared by all)
    return (1 - redraw) * torch.eye(law.numel(), dtype=torch.float64) + redraw * law[None, None, :]
    ### END SOLUTION


# %% id="transitions_tests" kind="tests" points=3
# K = 3 categories and T = 3 steps, beta_1, beta_2, beta_3 = 0.1, 0.5, 1 (not constant; the last step forgets all).
# Q_2 uses beta_2 = 0.5:
#   uniform:   0.5 I + (0.5 / 3) 1 1^T, so 2/3 on the diagonal and 1/6 elsewhere
#   absorbing: states 0 (the mask), 1, 2, 3; row 0 = (1, 0, 0, 0), row i = 0.5 e_0 + 0.5 e_i
_betas = torch.tensor([0.0, 0.1, 0.5, 1.0])
_stack = transition_stack(Process("uniform", 3, _betas))
assert isinstance(_stack, Tensor) and _stack.shape == (4, 3, 3) and _stack.dtype == torch.float64, \
    f"uniform, K = 3, T = 3: expected a float64 tensor of shape (4, 3, 3), got " \
    f"{getattr(_stack, 'dtype', type(_stack).__name__)} {tuple(getattr(_stack, 'shape', ()))}"
assert torch.equal(_stack[0], torch.eye(3)), f"index 0 must hold the identity (beta_0 = 0), got {_stack[0].tolist()}"
_want = 0.5 * torch.eye(3) + 1 / 6
assert torch.allclose(_stack[2], _want, rtol=1e-12, atol=1e-12), \
    f"uniform, beta_2 = 0.5: expected Q_2 = {_want.tolist()}, got {_stack[2].tolist()}"
_want = torch.full((3, 3), 1 / 3)
assert torch.allclose(_stack[3], _want, rtol=1e-12, atol=1e-12), \
    f"uniform, beta_3 = 1: every row of Q_3 must be (1/3, 1/3, 1/3), got {_stack[3].tolist()}"
_stack = transition_stack(Process("absorbing", 3, _betas))
assert isinstance(_stack, Tensor) and _stack.shape == (4, 4, 4) and _stack.dtype == torch.float64, \
    f"absorbing, K = 3 (K' = 4 states), T = 3: expected a float64 tensor of shape (4, 4, 4), got " \
    f"{getattr(_stack, 'dtype', type(_stack).__name__)} {tuple(getattr(_stack, 'shape', ()))}"
_want = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0.5, 0, 0, 0.5]])
assert torch.allclose(_stack[2], _want, rtol=1e-12, atol=1e-12), \
    f"absorbing, beta_2 = 0.5, the mask at state 0: expected Q_2 = {_want.tolist()}, got {_stack[2].tolist()}"
_want = torch.tensor([[1.0, 0, 0, 0]] * 4)
assert torch.allclose(_stack[3], _want, rtol=1e-12, atol=1e-12), \
    f"absorbing, beta_3 = 1: every state goes to the mask, expected Q_3 = {_want.tolist()}, got {_stack[3].tolist()}"
for _kind in ("uniform", "absorbing"):
    _sums = transition_stack(Process(_kind, 5, torch.tensor([0.0, 0.3, 0.02, 0.7]))).sum(-1)
    assert torch.allclose(_sums, torch.ones_like(_sums), rtol=0, atol=1e-12), \
        f"{_kind}, K = 5: every row of every Q_t must sum to 1, the sums are {_sums.tolist()}"
# The laws the chains settle to
for _kind, _want in (("uniform", torch.full((4,), 0.25)), ("absorbing", torch.tensor([1.0, 0, 0, 0, 0]))):
    _got = stationary_law(_kind, 4)
    assert isinstance(_got, Tensor) and _got.shape == _want.shape and torch.allclose(_got, _want, atol=1e-15), \
        f"stationary_law({_kind!r}, 4): expected {_want.tolist()}, got " \
        f"{_got.tolist() if isinstance(_got, Tensor) else _got}"
for _call in (lambda: stationary_law("gaussian", 4), lambda: transition_stack(Process("gaussian", 4, _betas))):
    try:
        _call()
    except ValueError as _error:
        assert "kind" in str(_error), f"the message must name kind, got: {_error}"
    else:
        raise AssertionError("kind = 'gaussian' must raise a ValueError naming kind (only uniform and absorbing here)")
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _entry_by_entry(kind, beta, K):
    # q(x_t = j | x_{t-1} = i) from the definition, one entry at a time: keep the state with probability 1 - beta,
    # else draw it from the law (uniform over the K categories, or the mask, state 0)
    n = K + (kind == "absorbing")
    law = [1.0 / K] * K if kind == "uniform" else [1.0] + [0.0] * K
    rows = [[(1 - beta) * (i == j) + beta * law[j] for j in range(n)] for i in range(n)]
    return torch.tensor(rows).double()


def _law_of(kind, K):
    return torch.full((K,), 1.0 / K) if kind == "uniform" else torch.eye(K + 1)[0]


_g = torch.Generator().manual_seed(60)


def _random_betas(T):
    # in (0, 1], with a step that forgets everything and a tiny one
    draws = torch.rand(T, generator=_g) * 0.98 + 0.01
    draws[T // 2] = 1.0
    draws[0] = 1e-7
    return draws


# 1) Every entry, against the definition, for D3PM's schedules and random ones; T = 1 and T = 1000, K = 2 and 256
for _kind in ("uniform", "absorbing"):
    _d3pm = absorbing_process if _kind == "absorbing" else uniform_process
    for _K, _T in ((2, 1), (2, 2), (3, 7), (5, 4), (4, 1000), (256, 3)):
        for _process in (_d3pm(_K, _T), process_from_betas(_kind, _K, _random_betas(_T))):
            _n = _K + (_kind == "absorbing")
            _where = f"{_kind}, K = {_K}, T = {_T}"
            _got = transition_stack(_process)
            assert isinstance(_got, Tensor) and _got.shape == (_T + 1, _n, _n) and _got.dtype == torch.float64, \
                f"{_where}: expected a float64 tensor of shape {(_T + 1, _n, _n)}, got " \
                f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
            assert torch.equal(_got[0], torch.eye(_n)), f"{_where}: index 0 is not the identity"
            _steps = range(1, _T + 1) if _T <= 8 else (1, 2, _T // 2, _T // 2 + 1, _T - 1, _T)
            for _t in (_steps if _n <= 8 else (1, _T)):
                _want = _entry_by_entry(_kind, float(_process.betas[_t]), _K)
                assert torch.allclose(_got[_t], _want, rtol=1e-12, atol=1e-13), f"{_where}: Q_{_t} is wrong"
            # rows are distributions: nonnegative, summing to 1 (float64, to round-off)
            assert (_got >= 0).all() and (_got <= 1).all(), f"{_where}: entries outside [0, 1]"
            assert torch.allclose(_got.sum(-1), torch.ones(_T + 1, _n), rtol=0, atol=1e-12), \
                f"{_where}: a row does not sum to 1"
            # 2) the stationary law: a distribution that every step leaves as it is (a left eigenvector, pi Q_t = pi)
            _pi = stationary_law(_kind, _K)
            assert isinstance(_pi, Tensor) and _pi.shape == (_n,) and _pi.dtype == torch.float64, \
                f"{_where}: stationary_law must be a float64 tensor of shape ({_n},)"
            assert torch.allclose(_pi, _law_of(_kind, _K), rtol=0, atol=1e-15), f"{_where}: wrong stationary law"
            assert torch.allclose(_pi @ _got, _pi.expand(_T + 1, _n), rtol=0, atol=1e-12), \
                f"{_where}: pi Q_t != pi for some t"
            if _kind == "absorbing":  # the mask keeps what it gets: row 0 is e_0 at every step
                assert torch.allclose(_got[:, MASK], torch.eye(_n)[MASK].expand(_T + 1, _n), rtol=0, atol=1e-14), \
                    f"{_where}: a masked token must stay masked (row 0 = e_0)"
# 3) Anything but the two kinds, named in the message
for _kind in ("gaussian", "Uniform", "absorb", "", "mask"):
    for _call in (lambda k=_kind: stationary_law(k, 3), lambda k=_kind: transition_stack(Process(k, 3, _betas))):
        try:
            _call()
        except ValueError as _error:
            assert "kind" in str(_error), f"kind = {_kind!r}: the message must name kind: {_error}"
        else:
            raise AssertionError(f"kind = {_kind!r} must raise a ValueError naming kind")
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — the jump from step $s$ to step $t$ (4 points)
#
# From step $s$ to a later step $t$ the forward process moves by the product of the one-step matrices in between,
#
# $$q(x_t \mid x_s) = \operatorname{Cat}\big(x_t;\ \mathbf{x}_s \bar{\mathbf{Q}}_{t|s}\big), \qquad
# \bar{\mathbf{Q}}_{t|s} = \mathbf{Q}_{s+1}\mathbf{Q}_{s+2}\cdots\mathbf{Q}_t ,$$
#
# and $s = 0$ gives the lecture's $q(x_t \mid x_0)$ with $\bar{\mathbf{Q}}_t$. Since every $\mathbf{Q}_r$ is "keep
# the state, or draw from $\boldsymbol\pi$", so is their product: find it in closed form (Part E asks you to prove
# it) and write `jump_matrix(process, s, t)` without multiplying any matrices, from $\beta_{s+1}, \dots, \beta_t$
# alone. It must hold for every schedule the conventions allow, steps with $\beta_r = 1$ included, and for long
# schedules whose $\bar\alpha_t$ is far below anything float64 can hold. Raise a `ValueError` whose message names
# `s` and `t` unless $0 \le s \le t \le T$ ($s = t$ is the jump that goes nowhere: the identity).
#
# The jump answers a question the lecture asks of the chain: does $q(x_T \mid x_0)$ forget $x_0$? For the absorbing
# kernel with D3PM's schedule $\beta_t = 1/(T-t+1)$ every token is masked at step $T$, exactly; for the uniform kernel
# with the cosine schedule $x_T$ is uniform up to a tiny remainder. The hidden tests check both, with tolerances
# that follow from the schedule, and check your jumps against products of one-step matrices written out entry by
# entry.
#
# *Your function must accept:* `process` a `Process` (any kind, $K$ and schedule the conventions allow, $T$ up to a
# thousand or so); `s` and `t` Python ints. *It returns* a float64 tensor of shape `(K', K')`.

# %% id="jump" kind="solution"
def jump_matrix(process: Process, s: int, t: int) -> Tensor:
    """Q_{s+1} ... Q_t (K', K') float64: entry [i, j] = q(x_t = j | x_s = i); the identity when s == t."""
    ### BEGIN SOLUTION
    if not 0 <= s <= t <= process.T:
        raise ValueError(f"need 0 <= s <= t <= T = {process.T}, got s = {s}, t = {t}")
    law = stationary_law(process.kind, process.K)
    # the chance that no step from s+1 to t redraws the state: a product over those steps alone (never a ratio of
    # two running products, which is 0/0 once a beta_r = 1 has passed or once alpha_bar underflows)
    survive = torch.prod(1 - process.betas[s + 1:t + 1].to(torch.float64))
    return survive * torch.eye(law.numel(), dtype=torch.float64) + (1 - survive) * law.expand(law.numel(), -1)
    ### END SOLUTION


# %% id="jump_tests" kind="tests" points=4
# K = 3 and T = 5 with beta_1..beta_5 = 0.2, 0.5, 0.25, 1, 0.4.
#   s = 1, t = 3: the state is kept by steps 2 and 3 with probability 0.5 * 0.75 = 0.375 (not 0.8 * 0.5 * 0.75, which
#                 starts from step 0, nor 0.8 * 0.5, which is off by one step): uniform 0.375 I + (0.625 / 3) 1 1^T
#   s = 4, t = 5: only step 5 lies between, kept with probability 0.6, although step 4 forgot everything:
#                 absorbing, row 0 = e_0 and row i = 0.6 e_i + 0.4 e_0
#   s = 2, t = 5: the step with beta = 1 lies between: every absorbing state ends masked
_betas = torch.tensor([0.0, 0.2, 0.5, 0.25, 1.0, 0.4])
_uniform, _absorbing = Process("uniform", 3, _betas), Process("absorbing", 3, _betas)
_got = jump_matrix(_uniform, 1, 3)
_want = 0.375 * torch.eye(3) + 0.625 / 3
assert isinstance(_got, Tensor) and _got.shape == (3, 3) and _got.dtype == torch.float64, \
    f"uniform, K = 3: expected a float64 tensor of shape (3, 3), got " \
    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"uniform, s = 1, t = 3: expected 0.375 I + (0.625 / 3) 1 1^T = {_want.tolist()}, got {_got.tolist()}"
_got = jump_matrix(_absorbing, 4, 5)
_want = torch.tensor([[1.0, 0, 0, 0], [0.4, 0.6, 0, 0], [0.4, 0, 0.6, 0], [0.4, 0, 0, 0.6]])
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"absorbing, s = 4, t = 5 (after the step with beta = 1): expected {_want.tolist()}, got {_got.tolist()}"
_got = jump_matrix(_absorbing, 2, 5)
_want = torch.tensor([[1.0, 0, 0, 0]] * 4)
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"absorbing, s = 2, t = 5 (the step with beta = 1 between): expected all rows e_0, got {_got.tolist()}"
assert torch.allclose(jump_matrix(_uniform, 3, 3), torch.eye(3), rtol=0, atol=1e-15), "s = t must give the identity"
# Your jumps are the products of your one-step matrices (Part A): Q_{s+1} ... Q_t, here for every 0 <= s <= t <= 5
for _process in (_uniform, _absorbing):
    _stack = transition_stack(_process)
    for _s in range(6):
        _product = torch.eye(_process.num_states)
        for _t in range(_s, 6):
            if _t > _s:
                _product = _product @ _stack[_t]
            _got = jump_matrix(_process, _s, _t)
            assert torch.allclose(_got, _product, rtol=1e-12, atol=1e-12), \
                f"{_process.kind}, s = {_s}, t = {_t}: expected the product Q_{_s + 1} ... Q_{_t} = " \
                f"{_product.tolist()}, got {_got.tolist()}"
try:
    jump_matrix(_uniform, 4, 2)
except ValueError as _error:
    assert "s" in str(_error) and "t" in str(_error), f"the message must name s and t, got: {_error}"
else:
    raise AssertionError("s = 4 > t = 2 must raise a ValueError naming s and t")
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
import re


def _one_step_matrices(process):
    # Q_0 = I and every Q_r, r = 1..T, written entry by entry from the definition (mask = state 0): (T+1, n, n)
    kind, K = process.kind, process.K
    n = K + (kind == "absorbing")
    law = [1.0 / K] * K if kind == "uniform" else [1.0] + [0.0] * K
    return torch.tensor([[[(1 - b) * (i == j) + b * law[j] for j in range(n)] for i in range(n)]
                         for b in process.betas.tolist()], dtype=torch.float64)


def _product(matrices, s, t):
    # Q_{s+1} ... Q_t by repeated multiplication (the identity when s == t)
    out = torch.eye(matrices.shape[1], dtype=torch.float64)
    for r in range(s + 1, t + 1):
        out = out @ matrices[r]
    return out


_g = torch.Generator().manual_seed(61)
_forgets = torch.rand(12, generator=_g) * 0.9 + 0.05
_forgets[4] = 1.0  # beta_5 = 1
_underflow = 0.85 + 0.1 * torch.rand(400, generator=_g)  # alpha_bar_t < 1e-308 from t of about 330 on
for _kind in ("uniform", "absorbing"):
    _d3pm = absorbing_process if _kind == "absorbing" else uniform_process
    _processes = [(_d3pm(3, 1000), [(0, 1), (0, 500), (0, 1000), (999, 1000), (250, 750), (700, 700), (1, 999)]),
                  (_d3pm(2, 1), [(0, 0), (0, 1), (1, 1)]),
                  (_d3pm(6, 20), [(0, 20), (3, 4), (5, 17), (19, 20), (0, 0)]),
                  (process_from_betas(_kind, 4, _forgets), [(0, 12), (4, 5), (5, 6), (5, 12), (3, 7), (0, 4)]),
                  (process_from_betas(_kind, 3, _underflow), [(350, 352), (330, 400), (0, 400), (399, 400)]),
                  (process_from_betas(_kind, 200, _forgets[:6]), [(0, 6), (2, 5)])]
    for _process, _pairs in _processes:
        _n, _matrices = _process.num_states, _one_step_matrices(_process)
        for _s, _t in _pairs:
            _where = f"{_kind}, K = {_process.K}, T = {_process.T}, s = {_s}, t = {_t}"
            _got = jump_matrix(_process, _s, _t)
            assert isinstance(_got, Tensor) and _got.shape == (_n, _n) and _got.dtype == torch.float64, \
                f"{_where}: expected a float64 tensor of shape {(_n, _n)}, got " \
                f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
            assert torch.isfinite(_got).all(), f"{_where}: not finite"
            # 1) the product of the one-step matrices in between
            _want = _product(_matrices, _s, _t)
            assert torch.allclose(_got, _want, rtol=1e-10, atol=1e-12), \
                f"{_where}: not Q_(s+1) ... Q_t (largest difference {(_got - _want).abs().max():.3g})"
            assert torch.allclose(_got.sum(-1), torch.ones(_n), rtol=0, atol=1e-12), f"{_where}: rows do not sum to 1"
        # 2) the semigroup: the jump s -> t is the jump s -> u followed by u -> t
        _T = _process.T
        for _s, _u, _t in ((0, _T // 3, _T), (1, _T // 2, _T), (0, 0, _T), (_T // 2, _T, _T)):
            if _s <= _u <= _t:
                _two = jump_matrix(_process, _s, _u) @ jump_matrix(_process, _u, _t)
                assert torch.allclose(_two, jump_matrix(_process, _s, _t), rtol=1e-10, atol=1e-12), \
                    f"{_kind}, T = {_T}: jump {_s} -> {_t} is not jump {_s} -> {_u} then {_u} -> {_t}"
    # 3) s = 0 for every t of a schedule: q(x_t | x0), against the running products
    _process = _d3pm(5, 30)
    _want = torch.eye(_process.num_states)
    for _t, _Q in enumerate(_one_step_matrices(_process)):
        _want = _want @ _Q
        assert torch.allclose(jump_matrix(_process, 0, _t), _want, rtol=1e-10, atol=1e-12), \
            f"{_kind}, K = 5, T = 30: jump 0 -> {_t} is not Q_1 ... Q_{_t}"
# 4) q(x_T | x0) reaches the stationary law. Absorbing, beta_t = 1 / (T - t + 1): every row of Qbar_T is e_0, exactly.
for _K, _T in ((2, 1), (5, 10), (7, 1000), (50, 64)):
    _got = jump_matrix(absorbing_process(_K, _T), 0, _T)
    assert torch.allclose(_got, torch.eye(_K + 1)[0].expand(_K + 1, -1), rtol=0, atol=1e-12), \
        f"absorbing, K = {_K}, T = {_T}: x_T must be masked whatever x0"
# Uniform, cosine: row x0 of Qbar_T is pi + alpha_bar_T (e_x0 - pi), so its total-variation distance to pi is
# alpha_bar_T (1 - 1/K), with alpha_bar_T computed here in the log domain (about 1.6e-6 for T = 1000)
for _K, _T in ((2, 1000), (10, 1000), (4, 50)):
    _process = uniform_process(_K, _T)
    _abar_T = math.exp(math.fsum(math.log1p(-float(b)) for b in _process.betas[1:]))
    _distance = 0.5 * (jump_matrix(_process, 0, _T) - 1 / _K).abs().sum(-1)
    assert torch.allclose(_distance, torch.full((_K,), _abar_T * (1 - 1 / _K)), rtol=1e-5, atol=1e-15), \
        f"uniform, K = {_K}, T = {_T}: q(x_T | x0) should be {_abar_T * (1 - 1 / _K):.3g} from uniform in total " \
        f"variation, it is {_distance.tolist()}"
    assert _distance.max() < 1e-4, f"uniform, K = {_K}, T = {_T}: q(x_T | x0) is not close to uniform"
# 5) Steps out of range, named in the message
_process = uniform_process(3, 10)
for _s, _t in ((3, 2), (-1, 2), (0, 11), (11, 11), (10, 9), (-2, -1)):
    try:
        jump_matrix(_process, _s, _t)
    except ValueError as _error:
        assert re.search(r"\bs\b", str(_error)) and re.search(r"\bt\b", str(_error)), \
            f"s = {_s}, t = {_t}: the message must name s and t: {_error}"
    else:
        raise AssertionError(f"s = {_s}, t = {_t} with T = 10 must raise a ValueError naming s and t")
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — the reverse step of D3PM's $x_0$-parameterisation (5 points)
#
# Given $x_0$, Bayes' rule reverses one step of the chain:
#
# $$q(x_{t-1} \mid x_t, x_0) = \frac{q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)}, \qquad
# \text{as rows:}\quad \propto \big(\mathbf{x}_t \mathbf{Q}_t^\top\big) \odot \big(\mathbf{x}_0
# \bar{\mathbf{Q}}_{t-1}\big).$$
#
# The first factor is *column* $x_t$ of $\mathbf{Q}_t$: for each candidate $x_{t-1}$, the probability of the $x_t$
# that was observed. The second is *row* $x_0$ of $\bar{\mathbf{Q}}_{t-1}$, the law of $x_{t-1}$ given $x_0$. The
# product is the joint $q(x_{t-1}, x_t \mid x_0)$ as a function of $x_{t-1}$; normalised over $x_{t-1}$ it is the
# posterior.
#
# The reverse process does not know $x_0$. A network reads all the positions $X_t$ and returns, for each position,
# probabilities $\tilde p(x_0 \mid X_t)$, a row over the states. D3PM (eq. 4) defines the model's step by weighting
# the joint with them,
#
# $$p(x_{t-1} \mid X_t) \propto \sum_{x_0} q(x_{t-1}, x_t \mid x_0)\,\tilde p(x_0 \mid X_t)
# = \big(\mathbf{x}_t \mathbf{Q}_t^\top\big) \odot \big(\tilde{\mathbf{p}}\,\bar{\mathbf{Q}}_{t-1}\big),$$
#
# which is the posterior with the one-hot $\mathbf{x}_0$ replaced by the row $\tilde{\mathbf{p}}$ (the joint is
# linear in $\mathbf{x}_0$). Mind the difference from lesson 6 and the package, which weight the *posteriors*,
# $\sum_{x_0} \tilde p(x_0 \mid X_t)\, q(x_{t-1} \mid x_t, x_0)$: the joint weighs each $x_0$ by
# $q(x_t \mid x_0)$ as well, and for the uniform kernel the two steps differ (Part E asks when they agree).
#
# Write `reverse_step(process, x_t, t, x0=...)`. With `x0` a tensor of states (dtype `torch.long`), return Bayes'
# posterior $q(x_{t-1} \mid x_t, x_0)$ at every position; with `x0` a tensor of probabilities, return D3PM's
# $p(x_{t-1} \mid X_t)$ with $\tilde{\mathbf{p}}$ = `x0`. Each position is reversed on its own, with its own
# $x_t$ and its own row of `x0`, at its example's step.
#
# *Your function must accept:* `process` a `Process` (conventions above; keep $K'$ small here, up to about 10, and
# $T$ up to a thousand); `x_t` of shape `(B, ...)`, dtype `torch.long`, states in $0..K'-1$; `t` an int or a `(B,)`
# long tensor in $1..T$; `x0` either of `x_t`'s shape, dtype `torch.long`, holding data states (uniform: $0..K-1$,
# absorbing: $1..K$), or of shape `(B, ..., K')`, float32 or float64, each row a distribution over the states with
# no mass on the mask. You may assume that every position is possible: some $x_0$ of positive weight leads to its
# $x_t$ with positive probability. *It returns* a tensor of shape `(B, ..., K')` whose rows sum to 1, float64 when
# `x0` holds states, `x0`'s dtype when it holds probabilities.

# %% id="reverse" kind="solution"
def reverse_step(process: Process, x_t: Tensor, t, *, x0: Tensor) -> Tensor:
    """(B, ..., K'): q(x_{t-1} | x_t, x0) for x0 long states, or D3PM's eq. 4, (x_t Q_t^T) * (p~ Qbar_{t-1})
    normalised, for x0 = p~ probabilities (B, ..., K'). t: an int or a (B,) long tensor in 1..T."""
    ### BEGIN SOLUTION
    n, batch = process.num_states, x_t.shape[0]
    if not x0.is_floating_point():  # states: Bayes' posterior is eq. 4 with one-hot weights
        weights, dtype = torch.nn.functional.one_hot(x0, n).to(torch.float64), torch.float64
    else:
        weights, dtype = x0.to(torch.float64), x0.dtype
    steps = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(batch)
    distinct, which = torch.unique(steps, return_inverse=True)  # one pair of matrices per distinct step
    Q_t = transition_stack(process)[distinct][which]  # (B, K', K')
    Q_bar_before = torch.stack([jump_matrix(process, 0, int(u) - 1) for u in distinct])[which]  # (B, K', K')
    states = x_t.reshape(batch, -1)  # (B, N): the positions of each example in one axis
    # column x_t of Q_t, i.e. row x_t of its transpose: q(x_t | x_{t-1} = i) for every candidate i
    likelihood = torch.gather(Q_t.transpose(1, 2), 1, states[:, :, None].expand(-1, -1, n))
    joint = likelihood * torch.bmm(weights.reshape(batch, -1, n), Q_bar_before)  # (B, N, K')
    return (joint / joint.sum(-1, keepdim=True)).reshape(*x_t.shape, n).to(dtype)
    ### END SOLUTION


# %% id="reverse_tests" kind="tests" points=5
# K = 3, T = 4 with beta_1..beta_4 = 0.2, 0.5, 0.25, 0.6, so alpha_bar_2 = 0.8 * 0.5 = 0.4.
# Uniform, t = 3, x_t = 2, x0 = 0: column 2 of Q_3 is (1/12, 1/12, 5/6), row 0 of Qbar_2 is 0.4 e_0 + 0.2 =
# (0.6, 0.2, 0.2); their product (1/20, 1/60, 1/6) normalised is (3, 1, 10) / 14. Likewise x_t = 0, x0 = 0 gives
# (30, 1, 1) / 32, and x_t = 1, x0 = 2 gives (1, 10, 3) / 14. At t = 1, Qbar_0 = I: the posterior is the one-hot x0.
_betas = torch.tensor([0.0, 0.2, 0.5, 0.25, 0.6])
_uniform, _absorbing = Process("uniform", 3, _betas), Process("absorbing", 3, _betas)
_x_t = torch.tensor([[2, 0, 1], [1, 1, 0]])  # B = 2 examples of D = 3 positions
_x0 = torch.tensor([[0, 0, 2], [1, 2, 0]])
_steps = torch.tensor([3, 1])
_want = torch.tensor([[[3 / 14, 1 / 14, 10 / 14], [30 / 32, 1 / 32, 1 / 32], [1 / 14, 10 / 14, 3 / 14]],
                      [[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]])
_got = reverse_step(_uniform, _x_t, _steps, x0=_x0)
assert isinstance(_got, Tensor) and _got.shape == (2, 3, 3) and _got.dtype == torch.float64, \
    f"x_t (2, 3), K' = 3, x0 long: expected a float64 tensor of shape (2, 3, 3), got " \
    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"uniform, t = [3, 1], x0 long: expected {[[[round(v, 4) for v in r] for r in e] for e in _want.tolist()]}, " \
    f"got {[[[round(v, 4) for v in r] for r in e] for e in _got.tolist()]}"
_got = reverse_step(_uniform, _x_t[:1], 3, x0=_x0[:1])
assert torch.allclose(_got, _want[:1], rtol=1e-12, atol=1e-12), \
    f"uniform, t = 3 as an int: expected {_want[:1].tolist()}, got {_got.tolist()}"
# Eq. 4 with probabilities, uniform, t = 3, x_t = 2, p~ = (0.5, 0.3, 0.2): p~ Qbar_2 = 0.4 p~ + 0.2 = (0.4, 0.32, 0.28),
# times column 2 of Q_3, normalised: (5, 4, 35) / 44. (The mixture of the posteriors would give about
# (0.135, 0.106, 0.759): the joint weighs x0 = 2 more, since x_t = 2 is likelier from it.)
_probs = torch.tensor([[[0.5, 0.3, 0.2]]])
_got = reverse_step(_uniform, torch.tensor([[2]]), 3, x0=_probs)
_want = torch.tensor([[[5 / 44, 4 / 44, 35 / 44]]])
assert isinstance(_got, Tensor) and _got.shape == (1, 1, 3) and _got.dtype == torch.float64, \
    f"x0 probabilities (1, 1, 3) float64: expected a float64 tensor of shape (1, 1, 3), got " \
    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"uniform, t = 3, x_t = 2, p~ = (0.5, 0.3, 0.2): expected (5, 4, 35) / 44 = {_want.flatten().tolist()}, " \
    f"got {_got.flatten().tolist()}"
# Absorbing, states 0 (mask), 1, 2, 3; t = 3. x_t = 0 (masked), x0 = 2: column 0 of Q_3 is (1, 0.25, 0.25, 0.25),
# row 2 of Qbar_2 is 0.4 e_2 + 0.6 e_0 = (0.6, 0, 0.4, 0): the posterior is (0.6, 0, 0.1, 0) / 0.7 = (6/7, 0, 1/7, 0).
# x_t = 3 (not masked) came from x_{t-1} = 3: (0, 0, 0, 1). With p~ = (0, 0.5, 0.3, 0.2) at a masked x_t:
# (0.6, 0.05, 0.03, 0.02) / 0.7.
_got = reverse_step(_absorbing, torch.tensor([[0, 3]]), torch.tensor([3]), x0=torch.tensor([[2, 3]]))
_want = torch.tensor([[[6 / 7, 0, 1 / 7, 0], [0.0, 0, 0, 1]]])
assert isinstance(_got, Tensor) and _got.shape == (1, 2, 4), \
    f"absorbing, K = 3: the rows are over K' = 4 states, expected shape (1, 2, 4), got " \
    f"{tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"absorbing (the mask is state 0), t = 3, x_t = [0, 3], x0 = [2, 3]: expected {_want.tolist()}, got {_got.tolist()}"
_got = reverse_step(_absorbing, torch.tensor([[0]]), 3, x0=torch.tensor([[[0.0, 0.5, 0.3, 0.2]]]))
_want = torch.tensor([[[0.6, 0.05, 0.03, 0.02]]]) / 0.7
assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
    f"absorbing, t = 3, x_t = 0 (masked), p~ = (0, 0.5, 0.3, 0.2): expected {_want.flatten().tolist()}, " \
    f"got {_got.flatten().tolist()}"
# float32 probabilities give a float32 result
_got = reverse_step(_uniform, torch.tensor([[2]]), 3, x0=_probs.float())
assert isinstance(_got, Tensor) and _got.dtype == torch.float32, \
    f"x0 probabilities in float32: the result must be float32, got {getattr(_got, 'dtype', type(_got).__name__)}"
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _tables(process):
    # For the brute force: the one-step matrices as nested lists, written entry by entry from the definition, and
    # q(x_r = j | x0 = i) for r = 0..T, propagated step by step with plain loops
    kind, K = process.kind, process.K
    n = K + (kind == "absorbing")
    law = [1.0 / K] * K if kind == "uniform" else [1.0] + [0.0] * K
    one_step = [None] + [[[(1 - b) * (i == j) + b * law[j] for j in range(n)] for i in range(n)]
                         for b in process.betas[1:].tolist()]
    marginals = [[[float(i == j) for j in range(n)] for i in range(n)]]
    for r in range(1, process.T + 1):
        last, Q = marginals[-1], one_step[r]
        marginals.append([[sum(last[i][k] * Q[k][j] for k in range(n)) for j in range(n)] for i in range(n)])
    return one_step, marginals


def _brute_force(tables, x_t, t, weights):
    # sum over x0 of weights[x0] q(x_{t-1} = j, x_t | x0) = weights[x0] q(x_{t-1} = j | x0) q(x_t | x_{t-1} = j),
    # for every j, then normalised over j: enumeration, one position at a time
    one_step, marginals = tables
    n = len(weights)
    joint = [sum(weights[i] * marginals[t - 1][i][j] for i in range(n)) * one_step[t][j][x_t] for j in range(n)]
    total = sum(joint)
    return [v / total for v in joint]


def _draw_positions(process, tables, shape, steps, g):
    # data states x0 and probabilities p~ (positive on every data state), and an x_t drawn from q(x_t | x0') with x0'
    # drawn from p~ (so that every position is possible for both)
    n, offset = process.num_states, int(process.kind == "absorbing")
    B = shape[0]
    probs = torch.zeros(*shape, n)
    probs[..., offset:] = torch.rand(*shape, process.K, generator=g) + 0.05
    probs = probs / probs.sum(-1, keepdim=True)
    x0 = offset + torch.randint(0, process.K, shape, generator=g)
    x0_prime = torch.multinomial(probs.reshape(-1, n), 1, generator=g).reshape(shape)
    marginals = tables[1]
    x_t = torch.empty(shape, dtype=torch.long)
    flat_t, flat_x0, flat_x0p = x_t.view(B, -1), x0.view(B, -1), x0_prime.view(B, -1)
    for example in range(B):
        for d in range(flat_t.shape[1]):
            u = int(steps[example])
            # for the one-hot check, x_t must come from x0; for the probabilities, from x0'; alternate
            start = int(flat_x0[example, d]) if d % 2 == 0 else int(flat_x0p[example, d])
            row = torch.tensor(marginals[u][start])
            flat_t[example, d] = int(torch.multinomial(row, 1, generator=g))
    return x0, probs, x_t


_g = torch.Generator().manual_seed(62)
_forgets = torch.rand(6, generator=_g) * 0.8 + 0.1
_forgets[2] = 1.0  # beta_3 = 1: from step 3 on, q(x_t | x0) no longer depends on x0
# 1) Brute-force Bayes, position by position: both kinds, K = 2, 3, 5, D3PM's schedules and one that forgets, shapes
# (1, 1), (2, 3), (3, 2, 2) (images), t an int (1, T, in between) or per example, x0 as states and as probabilities
# (float64 and float32)
for _kind in ("uniform", "absorbing"):
    _d3pm = absorbing_process if _kind == "absorbing" else uniform_process
    for _K in (2, 3, 5):
        for _process in (_d3pm(_K, 8), process_from_betas(_kind, _K, _forgets)):
            _T, _n = _process.T, _process.num_states
            _tables_here = _tables(_process)
            for _shape, _t in (((1, 1), 1), ((2, 3), _T), ((3, 2, 2), 3), ((2, 3), None), ((1, 1), None),
                               ((3, 2, 2), None)):
                _B = _shape[0]
                _steps = (torch.randint(1, _T + 1, (_B,), generator=_g) if _t is None
                          else torch.full((_B,), _t, dtype=torch.long))
                if _t is None and _B > 1:
                    _steps[0], _steps[-1] = 1, _T
                _x0, _probs, _x_t = _draw_positions(_process, _tables_here, _shape, _steps, _g)
                _t_arg = _steps if _t is None else _t
                _where = f"{_kind}, K = {_K}, T = {_T}, x_t {_shape}, t {_steps.tolist()}"
                for _given in ("states", torch.float64, torch.float32):
                    _x0_arg = _x0 if _given == "states" else _probs.to(_given)
                    _got = reverse_step(_process, _x_t, _t_arg, x0=_x0_arg)
                    _dtype = torch.float64 if _given == "states" else _given
                    assert isinstance(_got, Tensor) and _got.shape == (*_shape, _n) and _got.dtype == _dtype, \
                        f"{_where}, x0 {_given}: expected {_dtype} of shape {(*_shape, _n)}, got " \
                        f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
                    _flat_got = _got.reshape(_B, -1, _n).double()
                    _flat_x_t = _x_t.reshape(_B, -1)
                    _tol = 1e-10 if _dtype == torch.float64 else 2e-6
                    for _b in range(_B):
                        for _d in range(_flat_x_t.shape[1]):
                            if _given == "states":
                                if _d % 2:  # x_t was drawn from x0' there: x0 may not lead to it
                                    continue
                                _weights = [float(i == int(_x0.reshape(_B, -1)[_b, _d])) for i in range(_n)]
                            else:
                                _weights = _probs.reshape(_B, -1, _n)[_b, _d].to(_given).double().tolist()
                            _want = torch.tensor(_brute_force(_tables_here, int(_flat_x_t[_b, _d]),
                                                              int(_steps[_b]), _weights))
                            assert torch.allclose(_flat_got[_b, _d], _want, rtol=_tol, atol=_tol), \
                                f"{_where}, x0 {_given}: example {_b}, position {_d} (x_t = " \
                                f"{int(_flat_x_t[_b, _d])}, t = {int(_steps[_b])}): expected " \
                                f"{[round(v, 6) for v in _want.tolist()]} by enumeration, got " \
                                f"{[round(v, 6) for v in _flat_got[_b, _d].tolist()]}"
# 2) A long schedule and a larger batch: T = 1000, B = 8, D = 16, t per example, against sums written with the
# brute force's tables (every row a distribution)
for _kind in ("uniform", "absorbing"):
    _process = (absorbing_process if _kind == "absorbing" else uniform_process)(4, 1000)
    _tables_here = _tables(_process)
    _steps = torch.tensor([1, 2, 999, 1000, 500, 7, 250, 3])
    _x0, _probs, _x_t = _draw_positions(_process, _tables_here, (8, 16), _steps, _g)
    _got = reverse_step(_process, _x_t, _steps, x0=_probs)
    assert torch.allclose(_got.sum(-1), torch.ones(8, 16), rtol=0, atol=1e-12), \
        f"{_kind}, T = 1000: rows do not sum to 1"
    for _b, _d in ((0, 0), (1, 5), (2, 9), (3, 15), (4, 2), (5, 11), (6, 6), (7, 13)):
        _want = torch.tensor(_brute_force(_tables_here, int(_x_t[_b, _d]), int(_steps[_b]), _probs[_b, _d].tolist()))
        assert torch.allclose(_got[_b, _d], _want, rtol=1e-9, atol=1e-12), \
            f"{_kind}, T = 1000, t = {int(_steps[_b])}: wrong reverse step at position {_d} of example {_b}"
# 3) The absorbing kernel: an unmasked x_t came from itself, whatever p~ says (with some mass on it)
_process = absorbing_process(5, 20)
_x_t = torch.tensor([[1, 2, 3, 4, 5]])
for _t in (1, 2, 10, 19):
    _p = torch.rand(1, 5, 6, generator=_g)
    _p[..., MASK] = 0
    _got = reverse_step(_process, _x_t, _t, x0=_p / _p.sum(-1, keepdim=True))
    assert torch.allclose(_got, torch.eye(6)[1:][None], rtol=0, atol=1e-12), \
        f"absorbing, t = {_t}: an unmasked x_t must come from itself"
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — one term of the bound (4 points)
#
# The variational bound of a discrete diffusion model reads as in lecture 2:
#
# $$-\log p(X_0) \le \underbrace{D_{\mathrm{KL}}\big(q(X_T \mid X_0)\,\|\,p(X_T)\big)}_{L_T} + \sum_{t=2}^{T}
# \mathbb{E}_q\Big[\underbrace{D_{\mathrm{KL}}\big(q(X_{t-1} \mid X_t, X_0)\,\|\,p(X_{t-1} \mid X_t)\big)}_{L_{t-1}}
# \Big] + \mathbb{E}_q\big[\underbrace{-\log p(X_0 \mid X_1)}_{L_0}\big],$$
#
# with $X_t \sim q(X_t \mid X_0)$. The forward process corrupts the positions of a sequence independently, and the
# model's reverse step treats them independently given $X_t$ (each position has its own row of $\tilde p$), so each
# term is a sum over the positions of one KL divergence (or one $-\log$) per position. Write
# `bound_term(process, x_t, t, x0=..., x0_probs=...)`: $L_{t-1}$ for each example, with $p(x_{t-1} \mid X_t)$ Part C's
# eq. 4 with $\tilde{\mathbf{p}}$ = `x0_probs`, and $L_0$ where $t = 1$; in nats, **summed** over all the positions of
# the example (a sequence's bound, not a per-position average).
#
# *Your function must accept:* `process`, `x_t` and `t` as in Part C (a batch may mix $t = 1$ with larger steps);
# `x0` of `x_t`'s shape, dtype `torch.long`, data states from which each position of `x_t` is possible at its step;
# `x0_probs` as Part C's probabilities (float32 or float64), giving each position's own `x0` a positive probability.
# *It returns* a tensor of shape `(B,)` in `x0_probs`' dtype.

# %% id="bound" kind="solution"
def bound_term(process: Process, x_t: Tensor, t, *, x0: Tensor, x0_probs: Tensor) -> Tensor:
    """(B,) nats, summed over the positions: L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) with p from
    D3PM's eq. 4 and p~ = x0_probs; L_0 = -log p(x0 | x_1) where t = 1."""
    ### BEGIN SOLUTION
    posterior = reverse_step(process, x_t, t, x0=x0)  # float64
    model = reverse_step(process, x_t, t, x0=x0_probs.to(torch.float64))
    # at t = 1 the posterior is the one-hot of x0, and its KL from the model is -log p(x0 | x_1): L_0 needs no branch.
    # xlogy: 0 log 0 = 0 where the posterior has no mass
    divergence = torch.xlogy(posterior, posterior) - torch.xlogy(posterior, model)
    return divergence.reshape(x_t.shape[0], -1).sum(1).to(x0_probs.dtype)
    ### END SOLUTION


# %% id="bound_tests" kind="tests" points=4
# Part C's process: K = 3, T = 4, beta_1..beta_4 = 0.2, 0.5, 0.25, 0.6, uniform kernel; B = 2 examples of 2 positions.
#   example 0, t = 3: position 0 is Part C's case x_t = 2, x0 = 0, p~ = (0.5, 0.3, 0.2): q = (3, 1, 10) / 14 and
#     p = (5, 4, 35) / 44, KL(q || p) = 0.041818...; position 1 has p~ = the one-hot of its x0, so p = q and KL = 0:
#     L_2 = 0.041818 (the sum over the positions, not their mean)
#   example 1, t = 1: L_0 = -log p(x0 | x_1). Position 0: x_1 = 1, x0 = 1, p~ = (0.2, 0.7, 0.1); column 1 of Q_1 is
#     (1, 13, 1) / 15, so p(x0 | x_1) = (0.2, 9.1, 0.1) / 9.4 and -log p(1 | x_1) = log(94 / 91). Position 1: x_1 = 0,
#     x0 = 2, p~ = (0.25, 0.25, 0.5): p = (3.25, 0.25, 0.5) / 4, -log(1 / 8). L_0 = log(94 / 91) + log 8 = 2.111877...
#     (not -log p~(x0) = -log 0.7 - log 0.5: the decoder is the model's reverse step at t = 1, not p~ itself)
_betas = torch.tensor([0.0, 0.2, 0.5, 0.25, 0.6])
_uniform = Process("uniform", 3, _betas)
_x_t, _x0 = torch.tensor([[2, 1], [1, 0]]), torch.tensor([[0, 2], [1, 2]])
_x0_probs = torch.tensor([[[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]], [[0.2, 0.7, 0.1], [0.25, 0.25, 0.5]]])
_q, _p = torch.tensor([3.0, 1, 10]) / 14, torch.tensor([5.0, 4, 35]) / 44
_want = torch.tensor([float((_q * (_q / _p).log()).sum()), math.log(94 / 91) + math.log(8)])
_got = bound_term(_uniform, _x_t, torch.tensor([3, 1]), x0=_x0, x0_probs=_x0_probs)
assert isinstance(_got, Tensor) and _got.shape == (2,) and _got.dtype == torch.float64, \
    f"B = 2, x0_probs float64: expected a float64 tensor of shape (2,), got " \
    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-10, atol=1e-12), \
    f"t = [3, 1]: expected [L_2, L_0] = {_want.tolist()} nats (summed over the positions), got {_got.tolist()}"
# x0_probs equal to the one-hot of x0: the model's step is the posterior, and every term is 0 (not nan: 0 log 0 = 0)
_got = bound_term(_uniform, _x_t, 3, x0=_x0, x0_probs=torch.nn.functional.one_hot(_x0, 3).double())
assert torch.allclose(_got, torch.zeros(2), rtol=0, atol=1e-12), \
    f"x0_probs = one-hot of x0, t = 3 (an int): expected [0, 0], got {_got.tolist()}"
# Absorbing (the mask is state 0), t = 2: positions that are not masked add nothing, and the result is finite
_absorbing = Process("absorbing", 3, _betas)
_probs = torch.tensor([[[0.0, 0.2, 0.3, 0.5], [0.0, 0.6, 0.3, 0.1], [0.0, 0.1, 0.1, 0.8]]])
_got = bound_term(_absorbing, torch.tensor([[1, 2, 3]]), 2, x0=torch.tensor([[1, 2, 3]]), x0_probs=_probs)
assert torch.allclose(_got, torch.zeros(1), rtol=0, atol=1e-12), \
    f"absorbing, nothing masked: expected [0], got {_got.tolist()}"
_got = bound_term(_uniform, _x_t[:1], 3, x0=_x0[:1], x0_probs=_x0_probs[:1].float())
assert isinstance(_got, Tensor) and _got.dtype == torch.float32 and abs(float(_got[0]) - _want[0]) < 1e-5, \
    f"x0_probs in float32: expected [{_want[0]:.6f}] in float32, got " \
    f"{_got.tolist() if isinstance(_got, Tensor) else _got} in {getattr(_got, 'dtype', type(_got).__name__)}"
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
from torch.distributions import Categorical, kl_divergence


def _tables(process):  # as in Part C's hidden tests: one-step matrices entry by entry, marginals by plain loops
    kind, K = process.kind, process.K
    n = K + (kind == "absorbing")
    law = [1.0 / K] * K if kind == "uniform" else [1.0] + [0.0] * K
    one_step = [None] + [[[(1 - b) * (i == j) + b * law[j] for j in range(n)] for i in range(n)]
                         for b in process.betas[1:].tolist()]
    marginals = [[[float(i == j) for j in range(n)] for i in range(n)]]
    for r in range(1, process.T + 1):
        last, Q = marginals[-1], one_step[r]
        marginals.append([[sum(last[i][k] * Q[k][j] for k in range(n)) for j in range(n)] for i in range(n)])
    return one_step, marginals


def _brute_force(tables, x_t, t, weights):
    one_step, marginals = tables
    n = len(weights)
    joint = [sum(weights[i] * marginals[t - 1][i][j] for i in range(n)) * one_step[t][j][x_t] for j in range(n)]
    total = sum(joint)
    return [v / total for v in joint]


_g = torch.Generator().manual_seed(63)


def _case(process, tables, shape, steps):
    # x0 uniform over the data states, x_t ~ q(x_t | x0) at each example's step, p~ positive on every data state
    n, offset, B = process.num_states, int(process.kind == "absorbing"), shape[0]
    x0 = offset + torch.randint(0, process.K, shape, generator=_g)
    probs = torch.zeros(*shape, n)
    probs[..., offset:] = torch.rand(*shape, process.K, generator=_g) ** 3 + 0.01
    probs = probs / probs.sum(-1, keepdim=True)
    x_t = torch.empty(shape, dtype=torch.long)
    for example in range(B):
        for d in range(x_t[example].numel()):
            row = torch.tensor(tables[1][int(steps[example])][int(x0[example].flatten()[d])])
            x_t[example].view(-1)[d] = int(torch.multinomial(row, 1, generator=_g))
    return x0, probs, x_t


# 1) Against the KL divergence of torch.distributions, with both distributions found by enumeration, summed over the
# positions: both kinds, shapes, t an int or per example (t = 1 mixed in), float32 and float64
_forgets = torch.tensor([0.3, 0.05, 1.0, 0.4, 0.2])
for _kind in ("uniform", "absorbing"):
    _d3pm = absorbing_process if _kind == "absorbing" else uniform_process
    for _process in (_d3pm(3, 10), _d3pm(2, 3), process_from_betas(_kind, 4, _forgets)):
        _T, _n = _process.T, _process.num_states
        _tables_here = _tables(_process)
        for _shape, _t in (((1, 1), 1), ((4, 3), None), ((2, 2, 3), _T), ((3, 5), 2), ((1, 4), None)):
            _B = _shape[0]
            _steps = (torch.randint(1, _T + 1, (_B,), generator=_g) if _t is None
                      else torch.full((_B,), _t, dtype=torch.long))
            if _t is None and _B > 1:
                _steps[0], _steps[1] = 1, _T
            _x0, _probs, _x_t = _case(_process, _tables_here, _shape, _steps)
            _want = torch.zeros(_B)
            for _b in range(_B):
                for _d in range(_x_t[_b].numel()):
                    _x_t_d, _x0_d, _u = int(_x_t[_b].flatten()[_d]), int(_x0[_b].flatten()[_d]), int(_steps[_b])
                    _q = torch.tensor(_brute_force(_tables_here, _x_t_d, _u, [float(i == _x0_d) for i in range(_n)]))
                    _p = torch.tensor(_brute_force(_tables_here, _x_t_d, _u, _probs[_b].reshape(-1, _n)[_d].tolist()))
                    _want[_b] += kl_divergence(Categorical(probs=_q), Categorical(probs=_p))
                    if _u == 1:  # L_0: the KL from a one-hot posterior is -log p(x0 | x_1)
                        assert abs(float(kl_divergence(Categorical(probs=_q), Categorical(probs=_p)))
                                   + math.log(_p[_x0_d])) < 1e-9
            _t_arg = _steps if _t is None else _t
            _where = f"{_kind}, K = {_process.K}, T = {_T}, x_t {_shape}, t {_steps.tolist()}"
            for _dtype, _tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
                _got = bound_term(_process, _x_t, _t_arg, x0=_x0, x0_probs=_probs.to(_dtype))
                assert isinstance(_got, Tensor) and _got.shape == (_B,) and _got.dtype == _dtype, \
                    f"{_where}, x0_probs {_dtype}: expected that dtype and shape ({_B},), got " \
                    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
                assert torch.allclose(_got.double(), _want, rtol=_tol, atol=_tol), \
                    f"{_where}, x0_probs {_dtype}: expected {_want.tolist()} nats, got {_got.tolist()}"
            # a KL divergence: never negative, and 0 when p~ is the one-hot of x0
            assert (bound_term(_process, _x_t, _t_arg, x0=_x0, x0_probs=_probs) >= -1e-12).all(), f"{_where}: negative"
            _exact = torch.nn.functional.one_hot(_x0, _n).double()
            assert torch.allclose(bound_term(_process, _x_t, _t_arg, x0=_x0, x0_probs=_exact), torch.zeros(_B),
                                  rtol=0, atol=1e-12), f"{_where}: p~ = the one-hot of x0 must give 0"
# 2) The absorbing kernel in closed form: a masked position adds lambda_t (-log p~(x0)), with lambda_t =
# (alpha_bar_{t-1} - alpha_bar_t) / (1 - alpha_bar_t), an unmasked one nothing; lambda_t = 1/t for beta_t = 1/(T-t+1)
for _process, _closed in ((absorbing_process(6, 1000), True), (process_from_betas("absorbing", 6, _forgets), False)):
    _abar = [1.0]
    for _beta in _process.betas[1:].tolist():
        _abar.append(_abar[-1] * (1 - _beta))
    for _t in ((1, 2, 3, 500, 999, 1000) if _closed else range(1, _process.T + 1)):
        _x0 = 1 + torch.randint(0, 6, (3, 7), generator=_g)
        _x_t = torch.where(torch.rand(3, 7, generator=_g) < 0.6, torch.zeros_like(_x0), _x0)
        if _abar[_t] == 0:
            _x_t = torch.zeros_like(_x0)  # everything is masked by then
        _probs = torch.zeros(3, 7, 7)
        _probs[..., 1:] = torch.rand(3, 7, 6, generator=_g) + 0.02
        _probs = _probs / _probs.sum(-1, keepdim=True)
        _lam = 1 / _t if _closed else (_abar[_t - 1] - _abar[_t]) / (1 - _abar[_t])
        _nll = -_probs.gather(-1, _x0[..., None])[..., 0].log()
        _want = (_lam * _nll * (_x_t == MASK)).sum(1)
        _got = bound_term(_process, _x_t, _t, x0=_x0, x0_probs=_probs)
        assert torch.allclose(_got, _want, rtol=1e-9, atol=1e-12), \
            f"absorbing, T = {_process.T}, t = {_t}: expected lambda_t times the cross-entropy of the masked " \
            f"positions, {_want.tolist()}, got {_got.tolist()}"
# 3) The exact reverse model makes the bound tight. One position (D = 1) of data with law q(x0): eq. 4 with p~ = q(x0)
# at every x_t is the exact reverse step q(x_{t-1} | x_t), so L_T (against q(x_T)) + the expected L_{t-1} = -log q(x0)
# for every x0. The expectations over x_t ~ q(x_t | x0) are sums over the states, with the brute force's marginals.
for _kind, _K in (("uniform", 4), ("absorbing", 3), ("uniform", 2)):
    for _process in ((absorbing_process if _kind == "absorbing" else uniform_process)(_K, 12),
                     process_from_betas(_kind, _K, torch.tensor([0.1, 0.5, 0.05, 0.3, 0.9, 0.2]))):
        _n, _offset = _process.num_states, int(_kind == "absorbing")
        _law = torch.zeros(_n)
        _law[_offset:] = torch.rand(_K, generator=_g) + 0.1
        _law = _law / _law.sum()
        _marginals = _tables(_process)[1]
        _bound = torch.zeros(_n)
        _q_T = _law @ torch.tensor(_marginals[_process.T])
        for _c in range(_offset, _n):  # L_T = KL(q(x_T | x0) || q(x_T))
            _bound[_c] = kl_divergence(Categorical(probs=torch.tensor(_marginals[_process.T][_c])),
                                       Categorical(probs=_q_T))
        for _t in range(1, _process.T + 1):
            _pairs = [(c, s) for c in range(_offset, _n) for s in range(_n) if _marginals[_t][c][s] > 0]
            _x0 = torch.tensor([[c] for c, _ in _pairs])
            _x_t = torch.tensor([[s] for _, s in _pairs])
            _terms = bound_term(_process, _x_t, _t, x0=_x0, x0_probs=_law.expand(len(_pairs), 1, _n))
            for (_c, _s), _term in zip(_pairs, _terms.tolist(), strict=True):
                _bound[_c] += _marginals[_t][_c][_s] * _term
        _want = -_law[_offset:].log()
        assert torch.allclose(_bound[_offset:], _want, rtol=1e-9, atol=1e-10), \
            f"{_kind}, K = {_K}, T = {_process.T}: with the exact reverse model the bound must be -log q(x0) = " \
            f"{_want.tolist()}, it is {_bound[_offset:].tolist()}"
### END HIDDEN TESTS

# %% [markdown] id="part_d_demo"
# Nothing to write here: the cell takes data of one position whose law $q(x_0)$ over $K = 5$ categories is lopsided,
# and runs the reverse process of each kernel ($T = 50$) from its stationary law down to $t = 0$, with your
# `reverse_step` and $\tilde p = q(x_0)$, the same row at every step (Part E shows why this is the exact reverse
# process for one position). The histograms of 20000 samples match $q(x_0)$. It also prints the bound of each $x_0$
# in bits, $L_T + \sum_t \mathbb{E}[L_{t-1}]$ with your `bound_term` and the expectations summed over the states:
# with the exact reverse model and $p(x_T) = \boldsymbol\pi$ it is $-\log_2 q(x_0)$, up to the tiny gap between
# $q(x_T)$ and $\boldsymbol\pi$ of the uniform kernel.

# %% id="d_demo"
_data = torch.tensor([0.4, 0.25, 0.15, 0.12, 0.08])  # q(x0) over K = 5 categories
_n_samples, _T = 5000, 30
_g = torch.Generator().manual_seed(0)
_fig, _axes = plt.subplots(1, 2, figsize=(11, 3.5))
for _ax, _process in zip(_axes, (uniform_process(5, _T), absorbing_process(5, _T)), strict=True):
    _offset = int(_process.kind == "absorbing")  # the data's first state
    _law = torch.zeros(_process.num_states)
    _law[_offset:] = _data
    _pi = stationary_law(_process.kind, _process.K)
    _x = torch.multinomial(_pi, _n_samples, replacement=True, generator=_g)[:, None]  # x_T ~ pi, (n, 1)
    for _t in range(_T, 0, -1):
        _step = reverse_step(_process, _x, _t, x0=_law.expand(_n_samples, 1, -1))
        _x = torch.multinomial(_step[:, 0], 1, generator=_g)
    _freq = torch.bincount(_x[:, 0], minlength=_process.num_states)[_offset:] / _n_samples
    _rows = jump_matrix(_process, 0, _T)[_offset:]  # q(x_T | x0) for each data state x0
    _nats = (torch.xlogy(_rows, _rows) - torch.xlogy(_rows, _pi)).sum(1)  # L_T against p(x_T) = pi
    for _t in range(1, _T + 1):
        _reach = jump_matrix(_process, 0, _t)[_offset:]  # q(x_t | x0)
        _pairs = torch.nonzero(_reach > 0)  # (x0 - offset, x_t): every x_t that some x0 can reach
        _terms = bound_term(_process, _pairs[:, 1:], _t, x0=_pairs[:, :1] + _offset,
                            x0_probs=_law.expand(len(_pairs), 1, -1))
        _nats = _nats.index_add(0, _pairs[:, 0], _reach[_pairs[:, 0], _pairs[:, 1]] * _terms)
    _bits = (_nats / math.log(2)).tolist()
    print(f"{_process.kind}: sample frequencies {[round(f, 3) for f in _freq.tolist()]} for q(x0) = {_data.tolist()}")
    print(f"  bound per x0 {[round(b, 4) for b in _bits]} bits; -log2 q(x0) = "
          f"{[round(-math.log2(p), 4) for p in _data.tolist()]}")
    _where = torch.arange(5)
    _ax.plot(_where, _data, "o-", label="q(x0)")
    _ax.plot(_where, _freq, "x", markersize=10, label=f"{_n_samples} samples")
    _ax.set(title=f"{_process.kind} kernel, T = {_T}: exact reverse process", xlabel="category", xticks=_where)
    _ax.legend()
plt.show()

# %% [markdown] id="part_e"
# ## Part E — why it works (4 points, graded by hand)
#
# 1. Show that the product of $a\,\mathbf{I} + (1-a)\,\mathbf{1}\boldsymbol\pi$ and $b\,\mathbf{I} +
#    (1-b)\,\mathbf{1}\boldsymbol\pi$ is of the same form, and derive $\bar{\mathbf{Q}}_{t|s}$ in closed form (Part
#    B). Why does Part B compute $\bar\alpha_{t|s}$ as a product over steps $s+1..t$ rather than as $\bar\alpha_t /
#    \bar\alpha_s$? How far is $q(x_T \mid x_0)$ from $\boldsymbol\pi$ in total variation, for each kernel, and what
#    is it for the absorbing schedule $\beta_t = 1/(T-t+1)$?
# 2. Absorbing kernel, $t \ge 2$: show that $L_{t-1}$ of one position is 0 where $x_t$ is not masked, and
#    $\lambda_t \cdot (-\log\tilde p(x_0 \mid X_t))$ where it is; find $\lambda_t$ in terms of
#    $\bar\alpha_{t-1}$ and $\bar\alpha_t$, and its value for $\beta_t = 1/(T-t+1)$. Which familiar training
#    objective is the bound then? (Your `bound_term` lets you check your $\lambda_t$.)
# 3. Show that for the absorbing kernel D3PM's eq. 4 and the mixture of posteriors give the same reverse step for
#    every $\tilde p$, and that for the uniform kernel they do not. For data of one position with law $q(x_0)$,
#    show that eq. 4 with $\tilde p = q(x_0)$, the same row whatever $x_t$, is the exact reverse step $q(x_{t-1}
#    \mid x_t)$, for both kernels (the demo above samples with it).

# %% [markdown] id="why_it_works" kind="manual" points=4
# ### BEGIN SOLUTION
# **1.** With $\boldsymbol\pi\mathbf{1} = 1$ (a law sums to 1), $(a\mathbf{I} + (1-a)\mathbf{1}\boldsymbol\pi)
# (b\mathbf{I} + (1-b)\mathbf{1}\boldsymbol\pi) = ab\,\mathbf{I} + [a(1-b) + (1-a)b + (1-a)(1-b)]\,\mathbf{1}
# \boldsymbol\pi = ab\,\mathbf{I} + (1-ab)\,\mathbf{1}\boldsymbol\pi$. By induction over the steps,
# $\bar{\mathbf{Q}}_{t|s} = \bar\alpha_{t|s}\mathbf{I} + (1-\bar\alpha_{t|s})\mathbf{1}\boldsymbol\pi$ with
# $\bar\alpha_{t|s} = \prod_{r=s+1}^t (1-\beta_r)$: the state survives every step in between, or it is a draw from
# $\boldsymbol\pi$ (and $\boldsymbol\pi$ stays $\boldsymbol\pi$ under every later step). The ratio
# $\bar\alpha_t/\bar\alpha_s$ equals this product only while $\bar\alpha_s$ is a positive float: a step with
# $\beta_r = 1$ at $r \le s$ makes it $0/0$, and long schedules push $\bar\alpha_s$ below $10^{-308}$, where
# float64 holds 0 (or a subnormal with few digits); the product over $s+1..t$ never sees those earlier factors.
# Row $x_0$ of $\bar{\mathbf{Q}}_T$ minus $\boldsymbol\pi$ is $\bar\alpha_T(\mathbf{e}_{x_0} - \boldsymbol\pi)$,
# so the total-variation distance is $\bar\alpha_T(1 - \pi_{x_0})$: $\bar\alpha_T(1 - 1/K)$ for the uniform kernel,
# $\bar\alpha_T$ for the absorbing one. With $\beta_t = 1/(T-t+1)$, $1 - \beta_t = (T-t)/(T-t+1)$ telescopes to
# $\bar\alpha_t = 1 - t/T$; $\bar\alpha_T = 0$ and $x_T$ is the mask, exactly.
#
# **2.** Column $k$ of $\mathbf{Q}_t$ for a data state $k$ is $(1-\beta_t)\mathbf{e}_k$ ($\pi_k = 0$): an unmasked
# $x_t = k$ came from $x_{t-1} = k$, so the posterior and the model's step (for any $\tilde p$ with $\tilde p(k) >
# 0$) are both $\mathbf{e}_k$ and the KL is 0. Column 0 is $(1, \beta_t, \dots, \beta_t)$; row $x_0$ of
# $\bar{\mathbf{Q}}_{t-1}$ is $\bar\alpha_{t-1}\mathbf{e}_{x_0} + (1-\bar\alpha_{t-1})\mathbf{e}_0$. Their product
# has $1 - \bar\alpha_{t-1}$ on the mask and $\beta_t\bar\alpha_{t-1} = \bar\alpha_{t-1} - \bar\alpha_t$ on $x_0$,
# summing to $1 - \bar\alpha_t$; so the posterior puts $(1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$ on the mask and
# $\lambda_t = (\bar\alpha_{t-1} - \bar\alpha_t)/(1-\bar\alpha_t)$ on $x_0$. With $\tilde{\mathbf{p}}$ (no mass on
# the mask) the model's step has the same mass on the mask and $\lambda_t\tilde p(j)$ on each $j$. The KL keeps the
# term at $x_0$ only: $\lambda_t\log\frac{\lambda_t}{\lambda_t\tilde p(x_0)} = \lambda_t(-\log\tilde p(x_0 \mid
# X_t))$. For $\bar\alpha_t = 1 - t/T$, $\lambda_t = (1/T)/(t/T) = 1/t$ (and $\lambda_1 = 1$ matches
# $L_0$). The bound is a cross-entropy on the masked positions only, weighted by $1/t$ at masking rate $t/T$: the
# masked-language-model (BERT) objective over all masking rates, the loss MaskGIT trains without the weight.
#
# **3.** Eq. 4 weighs each $x_0$ by $\tilde p(x_0)\,q(x_t \mid x_0)$ in front of its posterior; the mixture by
# $\tilde p(x_0)$ alone (both renormalised). Absorbing: for a masked $x_t$, $q(x_t = \text{mask} \mid x_0) =
# 1 - \bar\alpha_t$ for every data state, a constant that cancels in the normalisation; for an unmasked $x_t = k$
# only $x_0 = k$ leads to it, and both steps are $\mathbf{e}_k$. So they agree. Uniform: $q(x_t \mid x_0) =
# \bar\alpha_t[x_0 = x_t] + (1-\bar\alpha_t)/K$ favours $x_0 = x_t$, so eq. 4 tilts the mixture towards it (Part C's
# example: $(5, 4, 35)/44$ against about $(0.135, 0.106, 0.759)$). One position: $\sum_{x_0} q(x_{t-1}, x_t \mid
# x_0)\,q(x_0) = q(x_{t-1}, x_t)$, the joint of the forward chain with the data summed out; normalised over $x_{t-1}$
# it is $q(x_{t-1} \mid x_t)$, for any kernel. (The mixture form needs $\tilde p = q(x_0 \mid x_t)$ for the same.)
#
# *Marking:* 1 for part 1 (the product and the closed form; the ratio's failure; the distances). 2 for part 2: 1 for
# the two cases of the KL with the masses of both steps, 1 for $\lambda_t$, $1/t$ and the masked-token reading.
# 1 for part 3 (the cancelling constant, the uniform counterexample, the exact step for one position).
# ### END SOLUTION
