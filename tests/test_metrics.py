"""Metrics against closed forms and brute force: sliced Wasserstein, Frechet distance, the digits classifier."""

import itertools
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ddpm_scratch.machinery.metrics as metrics
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.machinery.metrics import (
    CLASSIFIER_VERSION,
    DigitsClassifier,
    FDReport,
    default_cache_dir,
    digits_classifier,
    digits_fd,
    frechet_distance,
    frechet_distance_from_stats,
    sliced_wasserstein,
    train_digits_classifier,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------- sliced Wasserstein

def test_sliced_wasserstein_of_a_set_with_itself_is_zero():
    a = torch.randn(300, 3, generator=seeded(0))
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, a[torch.randperm(300, generator=seeded(1))]) == 0.0   # order does not matter


@given(dim=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_sliced_wasserstein_of_a_translated_cloud(dim, seed):
    """Projecting b = a + c onto theta shifts every point by c . theta, so W2^2 along theta is (c . theta)^2.

    For theta uniform on the sphere, (c . theta)^2 / |c|^2 ~ Beta(1/2, (D-1)/2): mean 1/D, variance
    2 (D-1) / (D^2 (D+2)). The average over P directions is within 5 standard errors of |c|^2 / D.
    """
    g = seeded(seed)
    a = torch.randn(200, dim, generator=g, dtype=torch.float64)
    c = torch.randn(dim, generator=g, dtype=torch.float64)
    num_projections = 400
    sw2_squared = sliced_wasserstein(a, a + c, num_projections, generator=g) ** 2
    c2 = c.pow(2).sum().item()
    standard_error = c2 * math.sqrt(2 * (dim - 1) / (dim**2 * (dim + 2)) / num_projections)
    assert abs(sw2_squared - c2 / dim) <= 5 * standard_error + 1e-9 * c2


def brute_force_w2_squared(x: list[float], y: list[float]) -> float:
    """1-D W2^2 between equal-size empirical measures: the best of all n! matchings (optimal transport)."""
    return min(sum((xi - yi) ** 2 for xi, yi in zip(x, perm, strict=True)) / len(x)
               for perm in itertools.permutations(y))


@given(n=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_sliced_wasserstein_in_one_dimension_is_the_optimal_matching(n, seed):
    g = seeded(seed)
    a, b = torch.randn(n, 1, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)
    expected = brute_force_w2_squared(a.flatten().tolist(), b.flatten().tolist())
    assert sliced_wasserstein(a, b, num_projections=3) ** 2 == pytest.approx(expected, rel=1e-10, abs=1e-12)


@given(na=st.integers(2, 7), nb=st.integers(2, 7), dim=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_sliced_wasserstein_unequal_sizes_match_replicated_equal_sizes(na, nb, dim, seed):
    """An empirical measure is unchanged by repeating every point k times: compare na*nb points per side."""
    g = seeded(seed)
    a = torch.randn(na, dim, generator=g, dtype=torch.float64)
    b = torch.randn(nb, dim, generator=g, dtype=torch.float64)
    unequal = sliced_wasserstein(a, b, 64, generator=seeded(1))
    equal = sliced_wasserstein(a.repeat(nb, 1), b.repeat(na, 1), 64, generator=seeded(1))
    assert unequal == pytest.approx(equal, rel=1e-9, abs=1e-12)
    assert sliced_wasserstein(a, torch.cat([a, a, a]), 16) == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_reproducible_and_seed_dependent():
    a, b = torch.randn(100, 2, generator=seeded(0)), torch.randn(120, 2, generator=seeded(1)) * 2
    assert sliced_wasserstein(a, b) == sliced_wasserstein(a, b)
    assert sliced_wasserstein(a, b, 8, seeded(1)) != sliced_wasserstein(a, b, 8, seeded(2))
    assert sliced_wasserstein(a, b) == pytest.approx(sliced_wasserstein(b, a), rel=1e-12)


@pytest.mark.parametrize("a, b, kwargs, error", [
    (torch.zeros(10), torch.zeros(10, 2), {}, ValueError),
    (torch.zeros(10, 2), torch.zeros(10, 3), {}, ValueError),
    (torch.zeros(1, 2), torch.zeros(10, 2), {}, ValueError),
    (torch.zeros(10, 2, dtype=torch.long), torch.zeros(10, 2), {}, ValueError),
    (torch.full((10, 2), float("nan")), torch.zeros(10, 2), {}, ValueError),
    (torch.zeros(10, 2), torch.zeros(10, 2), {"num_projections": 0}, ValueError),
    ([[0.0, 1.0]] * 3, torch.zeros(10, 2), {}, TypeError),
])
def test_sliced_wasserstein_bad_input(a, b, kwargs, error):
    with pytest.raises(error):
        sliced_wasserstein(a, b, **kwargs)


# ---------------------------------------------------------------------------------- Frechet distance

def random_covariance(dim: int, g: torch.Generator) -> torch.Tensor:
    m = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return m @ m.T + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = torch.randn(500, 8, generator=seeded(0)) @ torch.randn(8, 8, generator=seeded(1))
    scale = torch.cov(feats.double().T).trace().item()
    assert frechet_distance(feats, feats) <= 1e-9 * scale
    assert frechet_distance(feats, feats + 1) == pytest.approx(8.0, rel=1e-6)   # a shift only moves the mean


@given(dim=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_frechet_distance_diagonal_closed_form(dim, seed):
    """Commuting covariances: FD = |m1 - m2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2."""
    g = seeded(seed)
    mu1, mu2 = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    s1 = 5 * torch.rand(dim, generator=g, dtype=torch.float64)
    s2 = 5 * torch.rand(dim, generator=g, dtype=torch.float64)
    expected = (mu1 - mu2).pow(2).sum() + (s1.sqrt() - s2.sqrt()).pow(2).sum()
    got = frechet_distance_from_stats(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert got == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    assert frechet_distance_from_stats(mu2, torch.diag(s2), mu1, torch.diag(s1)) == pytest.approx(got, rel=1e-9,
                                                                                                  abs=1e-9)


@given(dim=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_frechet_distance_general_covariances(dim, seed):
    """Non-commuting case: tr (C1^1/2 C2 C1^1/2)^1/2 = sum_i sqrt(lambda_i(C1 C2)) (similar matrices); symmetric."""
    g = seeded(seed)
    mu1, mu2 = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    c1, c2 = random_covariance(dim, g), random_covariance(dim, g)
    trace_root = torch.linalg.eigvals(c1 @ c2).real.clamp(min=0).sqrt().sum()
    expected = ((mu1 - mu2).pow(2).sum() + c1.trace() + c2.trace() - 2 * trace_root).item()
    scale = (c1.trace() + c2.trace()).item()
    assert frechet_distance_from_stats(mu1, c1, mu2, c2) == pytest.approx(expected, abs=1e-8 * scale)
    assert frechet_distance_from_stats(mu2, c2, mu1, c1) == pytest.approx(expected, abs=1e-8 * scale)
    assert frechet_distance_from_stats(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8 * scale)


def test_frechet_distance_of_gaussian_samples_converges_to_the_closed_form():
    """Sample FD of N(m1, diag s1) vs N(m2, diag s2), n points each, against the closed form.

    First order, with e_k the error of the sample mean, the error is 2 (m1 - m2) . (e_1 - e_2)  [variance
    4 d^T (S1 + S2) d / n, d = m1 - m2] plus sum_i (1 - sqrt(s2_i / s1_i)) (s1_i^ - s1_i) + (1 <-> 2)
    [the sample variance s^ has variance 2 s^2 / n]. Second-order terms are O(1/n): |e_1 - e_2|^2 has mean
    tr(S1 + S2) / n, and the Bures term moves by at most E||S^ - S||_F^2 / (4 min s) ~ (tr S^2 + (tr S)^2)
    / (4 n min s) per side. Tolerance: 5 first-order standard deviations plus 5 times the second-order scale.
    """
    g = seeded(0)
    n, dim = 20_000, 4
    m1, m2 = torch.tensor([0.0, 1.0, -0.5, 0.3]), torch.tensor([0.5, 0.0, 0.5, 0.3])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5, 1.5]), torch.tensor([0.5, 2.0, 1.0, 3.0])
    a = m1 + s1.sqrt() * torch.randn(n, dim, generator=g, dtype=torch.float64)
    b = m2 + s2.sqrt() * torch.randn(n, dim, generator=g, dtype=torch.float64)
    exact = ((m1 - m2).pow(2).sum() + (s1.sqrt() - s2.sqrt()).pow(2).sum()).item()

    d = m1 - m2
    first_order_var = 4 * (d.pow(2) * (s1 + s2)).sum() / n \
        + ((1 - (s2 / s1).sqrt()).pow(2) * 2 * s1.pow(2)).sum() / n \
        + ((1 - (s1 / s2).sqrt()).pow(2) * 2 * s2.pow(2)).sum() / n
    second_order = ((s1 + s2).sum() + sum((s.pow(2).sum() + s.sum() ** 2) / (4 * s.min()) for s in (s1, s2))) / n
    tolerance = 5 * first_order_var.sqrt().item() + 5 * second_order.item()
    assert abs(frechet_distance(a, b) - exact) <= tolerance
    assert tolerance < 0.1 * exact                                    # the test can tell a wrong formula apart


@pytest.mark.parametrize("args", [
    (torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(3)),
    (torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3)),
    (torch.zeros(3, 1), torch.eye(3), torch.zeros(3), torch.eye(3)),
    (torch.zeros(3), torch.eye(3), torch.zeros(3), torch.tensor([[1.0, 2, 0], [0, 1, 0], [0, 0, 1]])),
    (torch.full((3,), float("nan")), torch.eye(3), torch.zeros(3), torch.eye(3)),
])
def test_frechet_distance_from_stats_bad_input(args):
    with pytest.raises(ValueError):
        frechet_distance_from_stats(*args)


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="width"):
        frechet_distance(torch.zeros(10, 3), torch.zeros(10, 4))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(10, 3))


# ---------------------------------------------------------------------------------- digits classifier

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache directory holding a trained classifier (trained once for the whole module)."""
    path = tmp_path_factory.mktemp("classifier_cache")
    digits_classifier(path)
    return path


@pytest.fixture
def classifier(cache):
    return digits_classifier(cache)


def cache_file(directory: Path) -> Path:
    return directory / f"digits_classifier_{CLASSIFIER_VERSION}.pt"


def test_classifier_architecture_and_accuracy(classifier):
    images, labels = load_digits("test")
    assert isinstance(classifier, DigitsClassifier) and not classifier.training
    with torch.no_grad():
        feats = classifier.features(images)
        accuracy = (classifier(images).argmax(dim=1) == labels).double().mean().item()
    assert feats.ndim == 2 and len(feats) == 360 and 32 <= feats.shape[1] <= 128
    assert accuracy >= 0.9
    assert classifier.test_accuracy == pytest.approx(accuracy, abs=1e-12)


def test_classifier_training_is_deterministic_and_leaves_global_state_alone(classifier):
    """Retrain with another thread count than the cached model's: the weights must agree bit for bit."""
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        retrained = train_digits_classifier()
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(state, torch.get_rng_state())
    cached, fresh = classifier.state_dict(), retrained.state_dict()
    assert cached.keys() == fresh.keys()
    assert all(torch.equal(cached[k], fresh[k]) for k in cached)


def test_cache_hit_loads_without_retraining(cache, monkeypatch):
    path = cache_file(cache)
    mtime = path.stat().st_mtime_ns
    first = digits_classifier(cache)

    def no_training(*args, **kwargs):
        raise AssertionError("the classifier was retrained despite a valid cache")

    monkeypatch.setattr(metrics, "train_digits_classifier", no_training)
    second = digits_classifier(cache)
    images, _ = load_digits("test")
    with torch.no_grad():
        assert torch.equal(first.features(images), second.features(images))
    assert second.test_accuracy == first.test_accuracy and not second.training
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in cache.iterdir()) == [path.name]     # no temporary files left behind


@pytest.fixture
def stub_training(monkeypatch):
    """Replace training by an untrained net, counting calls: tests of the cache logic stay fast."""
    calls = []

    def fake_train(*args, **kwargs):
        calls.append(1)
        model = DigitsClassifier().eval()
        model.test_accuracy = 0.5
        return model

    monkeypatch.setattr(metrics, "train_digits_classifier", fake_train)
    return calls


def test_corrupt_cache_is_retrained_and_replaced(tmp_path, stub_training):
    cache_file(tmp_path).write_bytes(b"this is not a checkpoint")
    with pytest.warns(UserWarning, match="retraining"):
        model = digits_classifier(tmp_path)
    assert stub_training == [1] and model.test_accuracy == 0.5
    reloaded = digits_classifier(tmp_path)                            # the replacement is a valid cache
    assert stub_training == [1] and reloaded.test_accuracy == 0.5


def test_cache_of_another_version_is_ignored(tmp_path, stub_training, monkeypatch):
    digits_classifier(tmp_path)
    monkeypatch.setattr(metrics, "CLASSIFIER_VERSION", CLASSIFIER_VERSION + "_changed")
    digits_classifier(tmp_path)
    assert stub_training == [1, 1]
    assert len(list(tmp_path.iterdir())) == 2


def test_default_cache_dir_follows_the_environment(tmp_path, stub_training, monkeypatch):
    monkeypatch.setenv("DDPM_SCRATCH_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    digits_classifier()
    assert cache_file(tmp_path / "cache").exists()
    monkeypatch.delenv("DDPM_SCRATCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "ddpm_scratch"


def test_features_reject_wrong_shapes(classifier):
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        classifier.features(torch.zeros(4, 8, 8))


# ---------------------------------------------------------------------------------- digits FD

def test_real_images_score_at_the_floor(classifier):
    """Real train images are what a perfect generator produces: fd and floor estimate the same quantity.

    Both are means over independent draws of identically distributed FDs (n = 360 uses all test images),
    so they differ by less than 5 standard errors of the difference.
    """
    train, _ = load_digits("train")
    report = digits_fd(train, classifier, seeded(0))
    assert report.n == 360 and report.num_draws == 20
    standard_error = math.sqrt((report.fd_std**2 + report.floor_std**2) / report.num_draws)
    assert abs(report.fd - report.floor) <= 5 * standard_error
    assert report.ratio == pytest.approx(report.fd / report.floor)
    assert report.classifier_accuracy == classifier.test_accuracy


def test_noise_scores_far_above_the_floor(classifier):
    noise = 2 * torch.rand(400, 1, 8, 8, generator=seeded(0)) - 1
    report = digits_fd(noise, classifier, seeded(1))
    assert report.fd > report.floor + 10 * (report.fd_std + report.floor_std)
    assert report.ratio > 10


def test_fd_uses_the_same_number_of_images_per_side(classifier):
    train, _ = load_digits("train")
    few = digits_fd(train[:50], classifier, seeded(0), num_draws=3)
    assert few.n == 50 and few.num_draws == 3
    # FD's small-sample bias: the floor at 50 images per side is larger than at 360
    assert few.floor > digits_fd(train, classifier, seeded(0), num_draws=3).floor


def test_fd_reproducible(classifier, cache, monkeypatch):
    samples = load_digits("test")[0][:100] * 0.9
    a = digits_fd(samples, classifier, seeded(4), num_draws=2)
    assert a == digits_fd(samples, classifier, seeded(4), num_draws=2)
    monkeypatch.setenv("DDPM_SCRATCH_CACHE", str(cache))
    assert digits_fd(samples, num_draws=2) == digits_fd(samples, classifier, num_draws=2)   # defaults


def test_fd_report_prints_both_numbers():
    report = FDReport(fd=12.5, fd_std=1.0, floor=2.5, floor_std=0.5, n=360, num_draws=20, classifier_accuracy=0.97)
    assert report.ratio == 5.0
    for text in (str(report), report.as_markdown()):
        assert "12.5" in text and "2.5" in text and "360" in text and "5.00" in text


@pytest.mark.parametrize("samples, error, match", [
    (torch.zeros(10, 8, 8), ValueError, "shape"),
    (torch.zeros(10, 1, 28, 28), ValueError, "shape"),
    (torch.zeros(10, 1, 8, 8, dtype=torch.long), ValueError, "floating"),
    (torch.zeros(1, 1, 8, 8), ValueError, "at least 2"),
    (torch.full((10, 1, 8, 8), float("nan")), ValueError, "NaN"),
    (torch.full((10, 1, 8, 8), 255.0), ValueError, r"\[-1, 1\]"),
    (torch.zeros(10, 64).tolist(), TypeError, "Tensor"),
])
def test_fd_bad_samples(classifier, samples, error, match):
    with pytest.raises(error, match=match):
        digits_fd(samples, classifier)


@pytest.mark.parametrize("num_draws", [0, -1, 1.5, True])
def test_fd_bad_num_draws(classifier, num_draws):
    with pytest.raises(ValueError if type(num_draws) is int else TypeError, match="num_draws"):
        digits_fd(load_digits("test")[0][:10], classifier, num_draws=num_draws)


def test_fd_warns_on_samples_slightly_out_of_range(classifier):
    samples = load_digits("test")[0][:20] * 1.2
    with pytest.warns(UserWarning, match="exceed"):
        digits_fd(samples, classifier, num_draws=1)


# ---------------------------------------------------------------------------------- class-conditional samples

def test_class_accuracy_of_the_test_digits_is_the_classifiers_test_accuracy(classifier):
    images, labels = load_digits("test")
    assert metrics.class_accuracy(images, labels, classifier) == pytest.approx(classifier.test_accuracy, abs=1e-12)
    wrong = (labels + 1) % 10  # every label shifted: only the classifier's mistakes can land on them
    assert metrics.class_accuracy(images, wrong, classifier) < 1 - classifier.test_accuracy + 1e-12


def test_class_diversity_is_one_for_real_digits_and_zero_for_one_image_per_class(classifier):
    images, labels = load_digits("test")
    assert metrics.class_diversity(images, labels, classifier) == pytest.approx(1.0, abs=1e-9)
    first = torch.stack([images[labels == k][0] for k in range(10)])
    collapsed = first.repeat_interleave(5, dim=0)  # five copies of one digit per class
    assert metrics.class_diversity(collapsed, torch.arange(10).repeat_interleave(5), classifier) == 0.0
    half = torch.cat([images[labels == k][: len(images[labels == k]) // 2] for k in range(10)])
    half_labels = torch.cat([labels[labels == k][: len(images[labels == k]) // 2] for k in range(10)])
    assert 0.5 < metrics.class_diversity(half, half_labels, classifier) < 2.0  # a real subset: about as varied


@pytest.mark.parametrize(("y", "message"), [
    (torch.zeros(3, dtype=torch.long), r"y must be a \(N,\)"),
    (torch.full((4,), 10), "classes 0..9"),
    (torch.zeros(4), r"y must be a \(N,\)"),
])
def test_class_metrics_check_the_labels(classifier, y, message):
    images = load_digits("test")[0][:4]
    with pytest.raises(ValueError, match=message):
        metrics.class_accuracy(images, y, classifier)
