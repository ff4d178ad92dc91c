"""Sample-quality metrics: sliced Wasserstein for point clouds, Frechet distance for digits.

Sliced Wasserstein. In one dimension the 2-Wasserstein distance between two empirical distributions
compares their quantile functions, W2^2 = int_0^1 (F_a^-1(u) - F_b^-1(u))^2 du; for equal sizes it is the
mean squared difference of the sorted points. In D dimensions we project onto random unit directions
theta and average: SW2^2 = E_theta W2^2(theta . a, theta . b). We report SW2, the square root.

Frechet distance. Fit a Gaussian to each set of features and compute the 2-Wasserstein distance
between the two Gaussians (the "FID" recipe, here with features of a small digits classifier):

    FD = |mu_1 - mu_2|^2 + tr(C_1) + tr(C_2) - 2 tr( (C_1^{1/2} C_2 C_1^{1/2})^{1/2} ).

FD from finite samples is biased upwards, and the bias grows as the sample shrinks, so a number alone
means little: `digits_fd` reports it beside the floor FD(real train images, real test images) computed
with the same number of images.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int
from .data import load_digits
from .files import atomic_save, load_torch_file
from .loop import Batch, LoopSettings, Update, run_loop

__all__ = [
    "sliced_wasserstein", "frechet_distance", "frechet_distance_from_stats", "gaussian_stats",
    "DigitsClassifier", "train_digits_classifier", "digits_classifier", "default_cache_dir",
    "FDReport", "digits_fd", "CLASSIFIER_VERSION", "class_accuracy", "class_diversity",
]


# ---------------------------------------------------------------------------------- sliced Wasserstein

def _check_cloud(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor of shape (N, D), got {x.dtype} {tuple(x.shape)}")
    if len(x) < 2:
        raise ValueError(f"{name} needs at least 2 points, got {len(x)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _w2_squared_1d(a: Tensor, b: Tensor) -> Tensor:
    """W2^2 between the empirical distributions of the columns: a (Na, P), b (Nb, P) -> (P,).

    The quantile function of n points is the sorted point k on u in [k/n, (k+1)/n); both are constant
    between the merged breakpoints {i/Na} U {j/Nb}, so the integral over u is an exact finite sum.
    """
    a, b = a.sort(dim=0).values, b.sort(dim=0).values
    na, nb = len(a), len(b)
    if na == nb:
        return (a - b).pow(2).mean(dim=0)
    # integer breakpoints on the common grid u = k / (na nb) avoid floating-point ties
    edges = torch.cat([torch.arange(1, na + 1) * nb, torch.arange(1, nb + 1) * na]).unique()   # sorted, ends at na nb
    starts = torch.cat([edges.new_zeros(1), edges[:-1]])
    widths = (edges - starts).to(a.dtype) / (na * nb)
    ia, ib = starts // nb, starts // na        # quantile index of each piece: floor(u na), floor(u nb)
    return ((a[ia.to(a.device)] - b[ib.to(b.device)]).pow(2) * widths.to(a.device)[:, None]).sum(dim=0)


def sliced_wasserstein(a: Tensor, b: Tensor, num_projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance SW2 = sqrt(mean_theta W2^2(theta . a, theta . b)) between point clouds.

    a: (Na, D), b: (Nb, D), Na, Nb >= 2. Sizes may differ: the 1-D W2 then integrates the two empirical
    quantile functions exactly. Directions: num_projections unit vectors, uniform on the sphere, drawn from
    `generator` (on a's device); None uses a fresh generator seeded with 0, so repeated calls agree.
    Computed in float64.
    """
    _check_cloud("a", a)
    _check_cloud("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension D, got {a.shape[1]} and {b.shape[1]}")
    check_int("num_projections", num_projections)
    if generator is None:
        generator = torch.Generator(device=a.device).manual_seed(0)
    theta = torch.randn(a.shape[1], num_projections, generator=generator, device=a.device, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)    # a Gaussian vector's direction is uniform on the sphere
    w2_squared = _w2_squared_1d(a.double() @ theta, b.to(a.device).double() @ theta)
    return w2_squared.mean().sqrt().item()


# ---------------------------------------------------------------------------------- Frechet distance

def _sqrtm_psd(c: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off eigenvalues set to 0)."""
    eigenvalues, vectors = torch.linalg.eigh(c)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def gaussian_stats(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (F,) and unbiased covariance (F, F), float64, of features (N, F) with N >= 2."""
    _check_cloud("feats", feats)
    x = feats.double()
    return x.mean(dim=0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def frechet_distance_from_stats(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """FD between N(mu1, cov1) and N(mu2, cov2): |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2).

    mu: (F,), cov: (F, F) symmetric positive semi-definite. Computed in float64; the result is >= 0.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(v).double() for v in (mu1, mu2, cov1, cov2))
    if mu1.dim() != 1 or len(mu1) < 1:
        raise ValueError(f"mu1 must have shape (F,) with F >= 1, got {tuple(mu1.shape)}")
    dim = len(mu1)
    for name, v, shape in (("mu2", mu2, (dim,)), ("cov1", cov1, (dim, dim)), ("cov2", cov2, (dim, dim))):
        if tuple(v.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match mu1, got {tuple(v.shape)}")
    for name, v in (("mu1", mu1), ("mu2", mu2), ("cov1", cov1), ("cov2", cov2)):
        if not torch.isfinite(v).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        if not torch.allclose(c, c.T, rtol=1e-6, atol=1e-12 * max(float(c.abs().max()), 1.0)):
            raise ValueError(f"{name} must be a symmetric matrix")
    root1 = _sqrtm_psd(cov1)
    middle = root1 @ cov2 @ root1
    # tr (C1^1/2 C2 C1^1/2)^1/2 = sum of square roots of the eigenvalues of that symmetric PSD matrix
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    fd = (mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * trace_root
    return max(fd.item(), 0.0)


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """FD between Gaussians fitted (mean, unbiased covariance) to features feats_a (Na, F) and feats_b (Nb, F)."""
    _check_cloud("feats_a", feats_a)
    _check_cloud("feats_b", feats_b)
    if feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same width F, got {feats_a.shape[1]} "
                         f"and {feats_b.shape[1]}")
    return frechet_distance_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b.to(feats_a.device)))


# ---------------------------------------------------------------------------------- digits classifier

CLASSIFIER_VERSION = "cnn16-32-fc64_adam2e-3_b64_e20_seed0_v1"   # change it whenever the net or its training changes
CLASSIFIER_EPOCHS, CLASSIFIER_BATCH, CLASSIFIER_LR, CLASSIFIER_SEED = 20, 64, 2e-3, 0


class DigitsClassifier(nn.Module):
    """Small CNN for (N, 1, 8, 8) digits in [-1, 1]:

    conv3x3(1->16) ReLU maxpool -> (16, 4, 4) -> conv3x3(16->32) ReLU maxpool -> (32, 2, 2)
    -> linear(128->64) ReLU  [= features, F = 64] -> linear(64->10) logits.
    `test_accuracy` is the accuracy on the digits test split (NaN until measured).
    """

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, 10)
        self.test_accuracy = float("nan")

    def features(self, x: Tensor) -> Tensor:
        """x: (N, 1, 8, 8) -> penultimate activations (N, 64)."""
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"x must be digits of shape (N, 1, 8, 8), got {tuple(getattr(x, 'shape', ()))}")
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, 1, 8, 8) -> class logits (N, 10)."""
        return self.head(self.features(x))


@torch.no_grad()
def _accuracy(model: DigitsClassifier, images: Tensor, labels: Tensor) -> float:
    return (model(images).argmax(dim=1) == labels).double().mean().item()


def train_digits_classifier(seed: int = CLASSIFIER_SEED) -> DigitsClassifier:
    """Train the classifier on the digits train split (CPU, about a second); returns it in eval mode.

    The course's one loop (`loop.run_loop`) on the cross-entropy: Adam (AdamW without weight decay) at
    CLASSIFIER_LR, CLASSIFIER_EPOCHS shuffled epochs of CLASSIFIER_BATCH images (the incomplete last batch dropped),
    no clipping, no EMA. Deterministic for a given seed: the initial weights come from torch's global RNG inside
    fork_rng (the caller's RNG state is restored afterwards), the shuffling from a generator seeded with `seed`, no
    layer draws random numbers (no dropout), and training runs on one thread (restored afterwards), so reductions
    never split differently from one machine to the next.
    """
    images, labels = load_digits("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier()

    def cross_entropy(model: DigitsClassifier, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return F.cross_entropy(model(batch.x0), batch.y)

    steps = CLASSIFIER_EPOCHS * (len(images) // CLASSIFIER_BATCH)
    settings = LoopSettings(steps=steps, batch_size=CLASSIFIER_BATCH, lr=CLASSIFIER_LR, batch_order="epochs",
                            log_every=steps, checkpoint_every=steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # tiny ops: one thread is fastest, and the weights do not depend on the machine
    try:
        run_loop(model, [Update("cross_entropy", cross_entropy)], images, settings, labels=labels,
                 data_rng=torch.Generator().manual_seed(seed), noise_rng=torch.Generator(), progress=False)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.test_accuracy = _accuracy(model, *load_digits("test"))
    return model


def default_cache_dir() -> Path:
    """$DDPM_SCRATCH_CACHE if set, else ~/.cache/ddpm_scratch."""
    return Path(os.environ.get("DDPM_SCRATCH_CACHE") or Path.home() / ".cache" / "ddpm_scratch")


def _load_cached(path: Path) -> DigitsClassifier | None:
    """The cached classifier, or None if the file is missing, unreadable or from another version."""
    try:
        payload = load_torch_file(path, "classifier cache")
        if payload["version"] != CLASSIFIER_VERSION:
            return None
        model = DigitsClassifier()
        model.load_state_dict(payload["state_dict"])
        model.test_accuracy = float(payload["test_accuracy"])
    except FileNotFoundError:
        return None
    except Exception as error:   # corrupt or foreign file: retrain rather than crash
        warnings.warn(f"ignoring unreadable classifier cache {path} ({type(error).__name__}: {error}); retraining",
                      stacklevel=3)
        return None
    return model.eval()


def digits_classifier(cache_dir: str | Path | None = None) -> DigitsClassifier:
    """The digits classifier in eval mode: loaded from `cache_dir` if cached, else trained and cached.

    cache_dir defaults to default_cache_dir(). The file name carries CLASSIFIER_VERSION, so a change of
    architecture or training never loads stale weights; the file is written atomically (`files.atomic_save`),
    so concurrent processes never see half a file.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"digits_classifier_{CLASSIFIER_VERSION}.pt"
    model = _load_cached(path)
    if model is not None:
        return model
    model = train_digits_classifier()
    payload = {"version": CLASSIFIER_VERSION, "state_dict": model.state_dict(), "test_accuracy": model.test_accuracy}
    atomic_save(payload, path)
    return model


# ---------------------------------------------------------------------------------- FD for digits

@dataclass
class FDReport:
    """FD(samples, test) beside the real-data floor FD(train, test), both with n images per side.

    fd, floor: means over num_draws random subsets; fd_std, floor_std: their spread across draws (the standard
    deviation of a single draw, not of the mean). ratio = fd / floor: about 1 for samples as good as real images.
    """

    fd: float
    fd_std: float
    floor: float
    floor_std: float
    n: int
    num_draws: int
    classifier_accuracy: float
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.fd / self.floor if self.floor > 0 else float("inf")

    def as_markdown(self) -> str:
        return "\n".join([
            "| FD(samples, test) | FD(train, test) floor | ratio | n per side | draws | classifier test accuracy |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.fd:.3f} ± {self.fd_std:.3f} | {self.floor:.3f} ± {self.floor_std:.3f} | {self.ratio:.2f} "
            f"| {self.n} | {self.num_draws} | {self.classifier_accuracy:.3f} |",
        ])

    def __str__(self) -> str:
        return (f"FD {self.fd:.3f} (sd {self.fd_std:.3f}) vs real-data floor {self.floor:.3f} "
                f"(sd {self.floor_std:.3f}): ratio {self.ratio:.2f}, n = {self.n} per side, {self.num_draws} draws, "
                f"classifier test accuracy {self.classifier_accuracy:.3f}")


def _check_samples(samples: Tensor) -> None:
    if not isinstance(samples, Tensor):
        raise TypeError(f"samples must be a torch.Tensor, got {type(samples).__name__}")
    if samples.dim() != 4 or tuple(samples.shape[1:]) != (1, 8, 8) or not samples.is_floating_point():
        raise ValueError(f"samples must be floating digits of shape (N, 1, 8, 8), got {samples.dtype} "
                         f"{tuple(samples.shape)}")
    if len(samples) < 2:
        raise ValueError(f"samples needs at least 2 images, got {len(samples)}")
    if not torch.isfinite(samples).all():
        raise ValueError("samples contains NaN or infinite values")
    largest = samples.abs().max().item()
    if largest > 3:
        raise ValueError(f"samples must lie in [-1, 1]; got max |x| = {largest:.3g} (wrong scaling?)")
    if largest > 1.05:
        warnings.warn(f"samples exceed [-1, 1] (max |x| = {largest:.3g}); clip them for a fair FD", stacklevel=3)


def _spread(values: list[float]) -> float:
    return stdev(values) if len(values) > 1 else 0.0


def digits_fd(samples: Tensor, classifier: DigitsClassifier | None = None,
              generator: torch.Generator | None = None, num_draws: int = 20) -> FDReport:
    """Frechet distance of generated digits to the test split, in the classifier's feature space, with its floor.

    samples: (N, 1, 8, 8) in [-1, 1], N >= 2, on any device (copied to the classifier's device, the CPU).
    FD is biased by sample size, so both sides always hold n = min(N, 360) images. Each of num_draws draws
    takes n random test images T, n random samples S and n random train images R, and computes
    FD(S, T) and the floor FD(R, T); the report holds the means (and spreads) over draws. The floor is what a
    perfect generator would score with n images. With N = n every draw uses all samples, so only the floor
    and the test subset are averaged: pass N > 360 samples for a steadier fd.
    Subsets come from `generator` (CPU); None uses a fresh generator seeded with 0.
    classifier defaults to digits_classifier(). Values outside [-1, 1] by more than 0.05 warn; beyond 3 raise.
    """
    _check_samples(samples)
    check_int("num_draws", num_draws)
    classifier = digits_classifier() if classifier is None else classifier
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    device = next(classifier.parameters()).device
    with torch.no_grad():
        feats = {name: classifier.features(x.detach().to(device, torch.float32))
                 for name, x in (("samples", samples), ("train", load_digits("train")[0]),
                                 ("test", load_digits("test")[0]))}
    n = min(len(samples), len(feats["test"]))

    def subset(name: str) -> Tensor:
        x = feats[name]
        return x[torch.randperm(len(x), generator=generator)[:n].to(x.device)]

    fds, floors = [], []
    for _ in range(num_draws):
        test = subset("test")
        fds.append(frechet_distance(subset("samples"), test))
        floors.append(frechet_distance(subset("train"), test))
    return FDReport(fd=fmean(fds), fd_std=_spread(fds), floor=fmean(floors), floor_std=_spread(floors), n=n,
                    num_draws=num_draws, classifier_accuracy=classifier.test_accuracy)


# ---------------------------------------------------------------------------------- class-conditional samples
# Guidance trades diversity for fidelity to the class (lecture 5): these two numbers make that a measured curve.

def _check_labels(y: Tensor, samples: Tensor) -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a (N,) integer tensor of the classes the samples were drawn for, got "
                        f"{type(y).__name__}")
    if y.shape != (len(samples),) or y.is_floating_point():
        raise ValueError(f"y must be a (N,) = ({len(samples)},) integer tensor of the classes the samples were drawn "
                         f"for, got {type(y).__name__} {tuple(getattr(y, 'shape', ()))}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"y must hold digit classes 0..9, got values in {y.min().item()}..{y.max().item()}")
    return y.cpu()


def class_accuracy(samples: Tensor, y: Tensor, classifier: DigitsClassifier | None = None) -> float:
    """The fraction of generated digits that the digits classifier assigns to the class they were drawn for.

    samples: (N, 1, 8, 8) in [-1, 1]; y: (N,) classes 0..9. classifier: digits_classifier() by default (its
    test_accuracy, about 0.97, is what real digits score)."""
    _check_samples(samples)
    y = _check_labels(y, samples)
    classifier = digits_classifier() if classifier is None else classifier
    device = next(classifier.parameters()).device
    with torch.no_grad():
        predicted = classifier(samples.detach().to(device, torch.float32)).argmax(dim=1).cpu()
    return (predicted == y).double().mean().item()


def class_diversity(samples: Tensor, y: Tensor, classifier: DigitsClassifier | None = None) -> float:
    """How varied the digits of each class are, relative to real ones: for each class with at least 2 samples, the
    total variance (trace of the covariance) of the samples' classifier features, divided by that of the test
    split's digits of the class; the mean over those classes. 1: as varied as real digits; 0: one image per class.
    samples: (N, 1, 8, 8) in [-1, 1]; y: (N,) classes 0..9."""
    _check_samples(samples)
    y = _check_labels(y, samples)
    classifier = digits_classifier() if classifier is None else classifier
    device = next(classifier.parameters()).device
    test_images, test_labels = load_digits("test")
    with torch.no_grad():
        feats = classifier.features(samples.detach().to(device, torch.float32)).cpu().double()
        real = classifier.features(test_images.to(device)).cpu().double()
    ratios = []
    for k in y.unique().tolist():
        mine = feats[y == k]
        if len(mine) >= 2:
            ratios.append((mine.var(dim=0).sum() / real[test_labels == k].var(dim=0).sum()).item())
    if not ratios:
        raise ValueError("class_diversity needs at least 2 samples of some class")
    return fmean(ratios)
