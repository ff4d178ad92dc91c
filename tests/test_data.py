"""Datasets and the mini-batch iterator, checked against their definitions and scikit-learn's own data."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.machinery.data import (
    DATASETS,
    DIGITS_LEVELS,
    TOY_DATASETS,
    Dataset,
    batches,
    batches_per_epoch,
    digits_split_indices,
    get_dataset,
    load_dataset,
    load_digits,
    register_dataset,
    toy_2d,
    toy_2d_labelled,
)
from ddpm_scratch.nets import MLPEps, UNet


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------- toy 2-D sets

def test_toy_names():
    assert {"eight_gaussians", "swiss_roll", "two_moons", "checkerboard"} <= set(TOY_DATASETS)
    assert isinstance(TOY_DATASETS, tuple)
    assert set(DATASETS) == {"digits", "digits_4x4", *TOY_DATASETS}


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_shape_dtype_and_roughly_standardised(name):
    x = toy_2d(name, 20_000, seeded(0))
    assert x.shape == (20_000, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    # "coordinates of order 1": centred and unit-ish spread on each axis
    assert x.mean(dim=0).abs().max() < 0.25
    assert ((x.std(dim=0) > 0.5) & (x.std(dim=0) < 1.5)).all()


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_deterministic_under_a_seed_and_seeds_differ(name):
    assert torch.equal(toy_2d(name, 500, seeded(3)), toy_2d(name, 500, seeded(3)))
    assert not torch.equal(toy_2d(name, 500, seeded(3)), toy_2d(name, 500, seeded(4)))


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_leaves_the_global_rng_alone(name):
    state = torch.get_rng_state()
    toy_2d(name, 100, seeded(0))
    assert torch.equal(state, torch.get_rng_state())


def test_eight_gaussians_form_eight_equal_clusters_on_a_circle():
    x = toy_2d("eight_gaussians", 8000, seeded(1)).double()
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = math.sqrt(2) * torch.stack([angles.cos(), angles.sin()], dim=1)
    distance, cluster = torch.cdist(x, centres).min(dim=1)
    assert distance.max() < 0.7                      # std 0.1 per axis: 0.7 is beyond 6 sigma of the radius
    counts = torch.bincount(cluster, minlength=8).double()
    # multinomial counts: each ~ 1000 +- sqrt(8000 * 1/8 * 7/8)
    assert (counts - 1000).abs().max() < 5 * math.sqrt(8000 / 8 * 7 / 8)


def test_checkerboard_points_lie_on_black_squares_of_a_4x4_board():
    x = toy_2d("checkerboard", 5000, seeded(2)).double() * 2 / math.sqrt(3)   # back to the board [-2, 2]^2
    assert x.abs().max() <= 2 + 1e-6
    cells = torch.floor(x).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()
    occupied = {tuple(c) for c in cells.tolist()}
    assert len(occupied) == 8


@pytest.mark.parametrize("bad", ["eight-gaussians", "", "digits", "moons"])
def test_toy_unknown_name_lists_valid_names(bad):
    with pytest.raises(ValueError, match="swiss_roll"):
        toy_2d(bad, 10)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_toy_bad_size(bad):
    """A wrong type is a TypeError, a wrong value a ValueError; both name n."""
    with pytest.raises(TypeError if not isinstance(bad, int) or isinstance(bad, bool) else ValueError,
                       match="n must be"):
        toy_2d("two_moons", bad)


# ---------------------------------------------------------------------------------- digits

def test_digits_split_sizes_shapes_and_dtypes():
    for split, size in (("train", 1437), ("test", 360), ("all", 1797)):
        images, labels = load_digits(split)
        assert images.shape == (size, 1, 8, 8) and images.dtype == torch.float32
        assert labels.shape == (size,) and labels.dtype == torch.long
        assert set(labels.tolist()) == set(range(10))


def test_digits_are_scikit_learns_images_mapped_to_17_levels():
    from sklearn.datasets import load_digits as sklearn_digits

    reference = sklearn_digits()
    images, labels = load_digits("all")
    expected = torch.from_numpy(reference.images).float().unsqueeze(1) / 8 - 1
    assert torch.allclose(images, expected, atol=1e-7)
    assert torch.equal(labels, torch.from_numpy(reference.target).long())
    assert images.min() == -1 and images.max() == 1
    levels = torch.arange(17, dtype=torch.float32) / 8 - 1
    assert torch.equal(images.unique(), levels)
    assert DIGITS_LEVELS == len(levels)
    # DIGITS_LEVELS evenly spaced levels in [-1, 1] have spacing 2 / (DIGITS_LEVELS - 1): the decoder's bin width
    assert torch.allclose(images.unique().diff(), torch.full((16,), 2 / (DIGITS_LEVELS - 1)))


def test_digits_split_is_the_documented_stratified_split():
    from sklearn.model_selection import train_test_split

    _, labels = load_digits("all")
    train, test = train_test_split(np.arange(1797), test_size=0.2, random_state=0, stratify=labels.numpy())
    assert set(digits_split_indices("train").tolist()) == set(train.tolist())
    assert set(digits_split_indices("test").tolist()) == set(test.tolist())


def test_digits_splits_are_disjoint_cover_everything_and_match_the_images():
    train, test = digits_split_indices("train"), digits_split_indices("test")
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    assert sorted(train.tolist() + test.tolist()) == list(range(1797))
    all_images, all_labels = load_digits("all")
    for split, index in (("train", train), ("test", test)):
        images, labels = load_digits(split)
        assert torch.equal(images, all_images[index]) and torch.equal(labels, all_labels[index])


def test_digits_split_is_stratified():
    all_counts = torch.bincount(load_digits("all")[1], minlength=10)
    test_counts = torch.bincount(load_digits("test")[1], minlength=10)
    # stratification keeps each class's share: test count within one image of 20% of the class
    assert ((test_counts - 0.2 * all_counts).abs() <= 1).all()


def test_digits_returns_fresh_tensors():
    images, labels = load_digits("test")
    images.fill_(5.0)
    labels.fill_(-1)
    again, again_labels = load_digits("test")
    assert again.max() <= 1 and again_labels.min() >= 0


@pytest.mark.parametrize("bad", ["val", "Train", "", None])
def test_digits_bad_split(bad):
    with pytest.raises(ValueError, match="split"):
        load_digits(bad)


# ---------------------------------------------------------------------------------- get_dataset

def test_get_dataset_digits():
    assert torch.equal(get_dataset("digits", "test"), load_digits("test")[0])
    subset = get_dataset("digits", "train", n=100, generator=seeded(0))
    assert subset.shape == (100, 1, 8, 8)
    train = load_digits("train")[0].flatten(1)
    assert (subset.flatten(1)[:, None, :] == train[None]).all(dim=2).any(dim=1).all()   # all are train images
    assert torch.equal(subset, get_dataset("digits", "train", n=100, generator=seeded(0)))
    assert not torch.equal(subset, get_dataset("digits", "train", n=100, generator=seeded(1)))
    with pytest.raises(ValueError, match="n must be <= 1437"):
        get_dataset("digits", "train", n=2000)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_get_dataset_toy_defaults(name):
    train, test = get_dataset(name, "train"), get_dataset(name, "test")
    assert train.shape == (10_000, 2) and test.shape == (2_000, 2)
    assert torch.equal(train, get_dataset(name, "train"))              # reproducible without a generator
    assert not torch.equal(train[:2_000], test)                       # the splits are different draws
    assert get_dataset(name, "train", n=64).shape == (64, 2)
    assert torch.equal(get_dataset(name, n=64, generator=seeded(9)), toy_2d(name, 64, seeded(9)))


def test_get_dataset_bad_arguments():
    with pytest.raises(ValueError, match="checkerboard"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match="split"):
        get_dataset("two_moons", "all")
    with pytest.raises(ValueError, match="n must be"):
        get_dataset("two_moons", n=0)


# ---------------------------------------------------------------------------------- the registry

EXPECTED = {  # name: (shape, levels, num_classes, network class)
    "digits": ((1, 8, 8), 17, 10, UNet), "eight_gaussians": ((2,), None, 8, MLPEps),
    "swiss_roll": ((2,), None, 0, MLPEps), "two_moons": ((2,), None, 2, MLPEps),
    "checkerboard": ((2,), None, 0, MLPEps),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_entry_describes_its_examples_labels_and_network(name):
    entry = DATASETS[name]
    shape, levels, num_classes, network = EXPECTED[name]
    assert isinstance(entry, Dataset) and entry.name == name and entry.description
    assert (entry.shape, entry.levels, entry.num_classes, entry.network) == (shape, levels, num_classes, network)
    assert entry.is_image == (len(shape) == 3)
    x, labels = load_dataset(name, "test", n=64, generator=seeded(0))
    assert x.shape == (64, *shape) and x.dtype == torch.float32
    if num_classes:
        assert labels.shape == (64,) and labels.dtype == torch.long
        assert 0 <= labels.min() and labels.max() < num_classes
    else:
        assert labels is None
    torch.manual_seed(0)
    net = entry.build_network()
    assert type(net) is network
    t = torch.randint(1, 100, (64,))
    assert net(x, t).shape == x.shape
    if num_classes:  # conditional: labels 0..num_classes-1 and the "no label" token num_classes
        conditional = entry.build_network(num_classes=num_classes)
        y = torch.arange(64) % (num_classes + 1)
        assert conditional(x, t, y).shape == x.shape


def test_build_network_takes_other_arguments_instead_of_the_defaults():
    small = DATASETS["two_moons"].build_network({"hidden": 8, "depth": 1})
    default = DATASETS["two_moons"].build_network()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in default.parameters())
    assert DATASETS["two_moons"].network_args == {"hidden": 128, "depth": 3}  # not changed by the call


def test_digits_levels_are_the_grey_levels_of_the_images():
    images, _ = load_dataset("digits", "all")
    assert len(images.unique()) == DATASETS["digits"].levels


def test_two_moons_label_0_is_the_upper_moon():
    """Back in make_moons' coordinates (x 0.7 + (0.5, 0.25)), label 0 points lie on the upper half of the unit circle
    about (0, 0), label 1 points on the lower half of the unit circle about (1, 0.5), up to the noise: std 0.07 per
    axis, so within 6 std = 0.42 of the arc and of its half-plane (the chance of one of 10^4 points out is ~2e-5).
    Swapped labels fail: the lower moon has points 0.5 from (0, 0) and below y = -0.42."""
    x, labels = load_dataset("two_moons", "train")
    p = x.double() * 0.7 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper, lower = p[labels == 0], p[labels == 1]
    tol = 6 * 0.07
    assert ((upper.norm(dim=1) - 1).abs() < tol).all() and (upper[:, 1] > -tol).all()
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert (((lower - centre).norm(dim=1) - 1).abs() < tol).all() and (lower[:, 1] < 0.5 + tol).all()
    n = len(labels)  # the moon is a fair coin: Binomial(n, 1/2)
    assert abs(len(upper) - n / 2) < 5 * math.sqrt(n / 4)


def test_eight_gaussians_label_is_the_nearest_centre():
    """Centres sqrt(2) (cos k pi/4, sin k pi/4), std 0.1: neighbours are 1.08 apart, 5.4 std to the midline."""
    x, labels = load_dataset("eight_gaussians", "train")
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = math.sqrt(2) * torch.stack([angles.cos(), angles.sin()], dim=1)
    assert torch.equal(torch.cdist(x.double(), centres).argmin(dim=1), labels)
    counts = torch.bincount(labels, minlength=8).double()
    assert (counts - len(labels) / 8).abs().max() < 5 * math.sqrt(len(labels) / 8 * 7 / 8)


def test_digits_labels_are_the_images_labels():
    for split in ("train", "test", "all"):
        images, labels = load_dataset("digits", split)
        expected_images, expected_labels = load_digits(split)
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    subset, labels = load_dataset("digits", "train", n=50, generator=seeded(2))
    images, all_labels = load_digits("train")
    index = (subset.flatten(1)[:, None, :] == images.flatten(1)[None]).all(dim=2).float().argmax(dim=1)
    assert torch.equal(labels, all_labels[index])  # the labels of the images drawn (digits may repeat: same label)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_labelled_toy_points_are_the_unlabelled_ones(name):
    points, labels = toy_2d_labelled(name, 300, seeded(4))
    assert torch.equal(points, toy_2d(name, 300, seeded(4)))
    assert (labels is None) == (DATASETS[name].num_classes == 0)
    x, y = load_dataset(name, "train", n=300, generator=seeded(4))
    assert torch.equal(x, points) and (y is None or torch.equal(y, labels))


def test_get_dataset_is_load_dataset_without_labels():
    for name in DATASETS:
        for split in DATASETS[name].splits:
            assert torch.equal(get_dataset(name, split), load_dataset(name, split)[0])


def test_register_dataset_refuses_a_name_already_taken():
    before = dict(DATASETS)
    duplicate = Dataset("two_moons", "another", (2,), None, 0, MLPEps, {}, lambda split, n, g: (torch.zeros(1, 2),
                                                                                              None))
    with pytest.raises(ValueError, match="a dataset named 'two_moons' is already registered"):
        register_dataset(duplicate)
    assert DATASETS == before and DATASETS["two_moons"] is not duplicate


def test_load_dataset_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; valid names: digits"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\) for two_moons"):
        load_dataset("two_moons", "all")


def _blobs(split, n, generator):
    """A toy labelled set: three blobs in 3-D, x = label-th unit vector + noise; the test split is seeded apart."""
    g = generator or torch.Generator().manual_seed({"train": 0, "test": 1}[split])
    n = n or 300
    labels = torch.randint(0, 3, (n,), generator=g)
    return torch.eye(3)[labels] + 0.05 * torch.randn(n, 3, generator=g), labels


BLOBS = Dataset("test_blobs", "three blobs in 3-D (tests only)", (3,), None, 3, MLPEps, {"hidden": 16, "depth": 1},
                _blobs)


def test_a_registered_dataset_trains_from_a_train_config(tmp_path):
    """One registry entry is all a new dataset needs: TrainConfig accepts its name (read when the config is made,
    not when the class was defined), the trainer builds its network and loads its examples and labels, and
    `ddpm-scratch train --dataset` takes it, and `ddpm-scratch sample` pictures its first two coordinates and saves
    every coordinate in the .pt."""
    from ddpm_scratch.machinery.cli import main
    from ddpm_scratch.machinery.train import TrainConfig, load_model, train

    register_dataset(BLOBS)
    try:
        with pytest.raises(ValueError, match="num_classes must be 0 \\(unconditional\\) or 3"):
            TrainConfig(dataset="test_blobs", num_classes=2)
        config = TrainConfig(dataset="test_blobs", steps=4, batch_size=16, T=50, num_classes=3, device="cpu")
        assert config.model == {"hidden": 16, "depth": 1}
        result = train(config, out=tmp_path / "run", progress=False)
        assert isinstance(result.model, MLPEps) and result.model.dim == 3 and result.model.num_classes == 3
        assert math.isfinite(result.final_loss)
        model, _, loaded = load_model(tmp_path / "run" / "checkpoint.pt")
        assert loaded.dataset == "test_blobs" and isinstance(model, MLPEps)
        assert main(["train", "--dataset", "test_blobs", "--steps", "2", "--batch-size", "8", "--T", "50",
                     "--device", "cpu", "--out", str(tmp_path / "cli")]) == 0
        assert load_model(tmp_path / "cli" / "checkpoint.pt")[2].dataset == "test_blobs"
        assert main(["sample", "--run", str(tmp_path / "cli"), "--n", "5", "--num-steps", "3", "--device", "cpu",
                     "--out", str(tmp_path / "blobs.png")]) == 0
        assert (tmp_path / "blobs.png").exists() and torch.load(tmp_path / "blobs.pt").shape == (5, 3)
    finally:
        DATASETS.pop("test_blobs", None)
    assert "test_blobs" not in DATASETS
    with pytest.raises(ValueError, match="dataset must be one of .*got 'test_blobs'"):
        TrainConfig(dataset="test_blobs")


# ---------------------------------------------------------------------------------- batches

def take(iterator, k):
    return [next(iterator) for _ in range(k)]


@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), seed=st.integers(0, 2**31))
def test_batches_cover_each_epoch_without_repeats(n, batch_size, seed):
    data = torch.arange(n)
    per_epoch = batches_per_epoch(n, batch_size)
    assert per_epoch == (n // batch_size if n >= batch_size else 1)
    stream = batches(data, batch_size, seeded(seed))
    for _ in range(3):
        epoch = torch.cat(take(stream, per_epoch))
        assert all(len(b) == min(batch_size, n) for b in epoch.split(min(batch_size, n)))
        assert len(epoch) == per_epoch * min(batch_size, n)
        assert len(epoch.unique()) == len(epoch)                      # no element twice in an epoch
        if n % batch_size == 0 or n < batch_size:
            assert sorted(epoch.tolist()) == list(range(n))           # ... and every element once


def test_batches_reshuffle_every_epoch():
    stream = batches(torch.arange(100), 10, seeded(0))
    epochs = [torch.cat(take(stream, 10)) for _ in range(3)]
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    assert not torch.equal(epochs[0], torch.arange(100))


def test_batches_keep_trailing_dimensions():
    data = torch.randn(20, 1, 8, 8, generator=seeded(0))
    batch = next(batches(data, 6, seeded(1)))
    assert batch.shape == (6, 1, 8, 8)
    assert all((data == row).flatten(1).all(dim=1).any() for row in batch)


def test_batches_deterministic_and_only_use_the_generator():
    state = torch.get_rng_state()
    a = take(batches(torch.arange(50), 7, seeded(5)), 30)
    b = take(batches(torch.arange(50), 7, seeded(5)), 30)
    c = take(batches(torch.arange(50), 7, seeded(6)), 30)
    assert torch.get_rng_state().equal(state)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_batches_draw_one_full_permutation_per_epoch():
    """The generator advances by exactly one randperm(N) per epoch, so the permutation is reproducible."""
    g = seeded(11)
    stream = batches(torch.arange(30), 10, g)
    first_epoch = torch.cat(take(stream, 3))
    assert torch.equal(first_epoch, torch.randperm(30, generator=seeded(11)))
    reference = seeded(11)
    torch.randperm(30, generator=reference)
    assert torch.equal(g.get_state(), reference.get_state())          # nothing drawn beyond the permutation


@given(epochs_done=st.integers(0, 4), seed=st.integers(0, 2**31))
def test_batches_resume_from_a_saved_generator_state_at_an_epoch_boundary(epochs_done, seed):
    data, batch_size = torch.arange(23), 5
    per_epoch = batches_per_epoch(len(data), batch_size)
    g = seeded(seed)
    stream = batches(data, batch_size, g)
    take(stream, epochs_done * per_epoch)
    saved = g.get_state()
    continuation = take(stream, 2 * per_epoch + 1)
    restored = torch.Generator()
    restored.set_state(saved)
    resumed = take(batches(data, batch_size, restored), 2 * per_epoch + 1)
    assert all(torch.equal(x, y) for x, y in zip(continuation, resumed, strict=True))


@given(steps_done=st.integers(0, 25), seed=st.integers(0, 2**31))
def test_batches_resume_mid_epoch_with_start(steps_done, seed):
    data, batch_size = torch.arange(23), 5
    g = seeded(seed)
    initial = g.get_state()
    stream = batches(data, batch_size, g)
    take(stream, steps_done)
    continuation = take(stream, 9)
    restored = torch.Generator()
    restored.set_state(initial)
    resumed = take(batches(data, batch_size, restored, start=steps_done), 9)
    assert all(torch.equal(x, y) for x, y in zip(continuation, resumed, strict=True))


@pytest.mark.parametrize("kwargs, match", [
    ({"data": torch.zeros(0, 2), "batch_size": 4}, "data"),
    ({"data": torch.tensor(3.0), "batch_size": 4}, "data"),
    ({"data": [1, 2, 3], "batch_size": 4}, "data"),
    ({"data": torch.zeros(8, 2), "batch_size": 0}, "batch_size"),
    ({"data": torch.zeros(8, 2), "batch_size": 2.0}, "batch_size"),
    ({"data": torch.zeros(8, 2), "batch_size": 2, "start": -1}, "start"),
])
def test_batches_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        batches(**kwargs)
