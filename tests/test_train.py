"""The trainer (`train`, on the one loop of machinery/loop.py, tested on its own in test_loop.py): exact resume,
atomic checkpoints, NaN stop, warm-up, precision, config checks, conditional runs on a labelled dataset."""

import csv
import math

import pytest
import torch

from ddpm_scratch.losses import drop_labels, l_simple
from ddpm_scratch.machinery.data import load_dataset
from ddpm_scratch.machinery.files import UnreadableFile, atomic_save, load_torch_file
from ddpm_scratch.machinery.loop import Batch, TrainingDiverged, Update, optimisation_step, run_loop
from ddpm_scratch.machinery.train import (
    TrainConfig,
    build_schedule,
    load_checkpoint,
    load_model,
    load_network,
    select_device,
    train,
    training_objective,
)
from ddpm_scratch.nets import MLPEps
from ddpm_scratch.nets.protocol import LabelBound
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule


def toy_config(**overrides):
    base = dict(dataset="two_moons", steps=20, batch_size=32, T=50, warmup_steps=5, log_every=2,
                checkpoint_every=5, model={"hidden": 32, "depth": 2}, device="cpu")
    return TrainConfig(**(base | overrides))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    straight = train(toy_config(steps=20), out=tmp_path / "a", progress=False)
    train(toy_config(steps=10), out=tmp_path / "b", progress=False)
    resumed = train(toy_config(steps=20), out=tmp_path / "b", resume=True, progress=False)
    for p, q in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(straight.ema_model.state_dict().values(), resumed.ema_model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert _rows(tmp_path / "a" / "loss.csv") == _rows(tmp_path / "b" / "loss.csv")
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt").step == 20


def test_resume_refuses_a_different_config_or_a_missing_checkpoint(tmp_path):
    train(toy_config(steps=5), out=tmp_path, progress=False)
    written = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match="config differs"):
        train(toy_config(steps=10, lr=1e-4), out=tmp_path, resume=True, progress=False)
    assert (tmp_path / "config.json").read_text() == written  # a refused resume leaves the run's files alone
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(toy_config(), out=tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(ValueError, match="resume needs an output folder"):
        train(toy_config(), out=None, resume=True, progress=False)


class ExplodesAt(torch.nn.Module):
    """An MLP-like eps-net whose output turns NaN from a given forward call on."""

    def __init__(self, at_call):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.calls, self.at_call = 0, at_call

    def forward(self, x_t, t):
        self.calls += 1
        out = self.lin(torch.cat([x_t, t[:, None].float() / 50], dim=1))
        return out * float("nan") if self.calls >= self.at_call else out


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"loss became \{'loss': nan\} at step 8.*last good checkpoint"):
        train(toy_config(steps=20), out=tmp_path, progress=False, model=ExplodesAt(8))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state.step == 5
    assert all(torch.isfinite(v).all() for v in state.model.values())


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_torch_file(path, "checkpoint")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"this is not a checkpoint\n" * 10)


def _foreign(path):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, path)


def _bad_config(path):
    state = torch.load(path, weights_only=True)
    torch.save(state | {"config": state["config"] | {"T": 0}}, path)


@pytest.mark.parametrize("spoil, message", [
    (_truncated, "not a readable checkpoint"), (_garbage, "not a readable checkpoint"),
    (_foreign, "not a ddpm-scratch training checkpoint: it lacks config, step"),
    (_bad_config, "invalid training config: T must be"),
])
def test_a_spoilt_checkpoint_raises_an_error_naming_the_file(tmp_path, spoil, message):
    train(toy_config(steps=5), out=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    spoil(path)
    spoilt = path.read_bytes()
    for load in (lambda: load_checkpoint(path), lambda: load_model(path)):
        with pytest.raises(UnreadableFile, match=message) as error:
            load()
        assert str(path) in str(error.value)
    resume = lambda: train(toy_config(steps=10), out=tmp_path, resume=True, progress=False)  # noqa: E731
    with pytest.raises(UnreadableFile, match=message) as error:
        resume()
    assert str(path) in str(error.value)
    assert path.read_bytes() == spoilt


def test_warm_up_is_linear_then_constant(tmp_path):
    train(toy_config(steps=8, warmup_steps=4, log_every=1, lr=1e-3), out=tmp_path, progress=False)
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "loss.csv")]
    # the lr logged after step k is the one the next step will use: min(1, (k + 1) / warmup) * lr
    expected = [min(1.0, (k + 1) / 4) * 1e-3 for k in range(1, 9)]
    assert lrs == pytest.approx(expected)


def test_bf16_autocast_runs_on_the_cpu_and_fp16_needs_cuda(tmp_path):
    result = train(toy_config(steps=4, precision="bf16"), progress=False)
    assert math.isfinite(result.final_loss)
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(toy_config(steps=4, precision="fp16"), progress=False)


def test_load_model_restores_the_ema_network(tmp_path):
    result = train(toy_config(steps=6), out=tmp_path, progress=False)
    model, schedule, config = load_model(tmp_path / "checkpoint.pt")
    x, t = torch.randn(5, 2), torch.randint(1, 51, (5,))
    assert torch.equal(model(x, t), result.ema_model(x, t))
    assert schedule.T == 50 and config.dataset == "two_moons"


def test_a_tiny_digits_run_trains_the_unet(tmp_path):
    config = TrainConfig(steps=3, batch_size=8, T=25, device="cpu", log_every=1,
                         model=dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                    attention_resolutions=(4,), num_groups=4))
    result = train(config, out=tmp_path, progress=False)
    assert math.isfinite(result.final_loss) and len(_rows(tmp_path / "loss.csv")) == 3


@pytest.mark.parametrize("overrides, name", [
    ({"dataset": "mnist"}, "dataset"), ({"steps": 0}, "steps"), ({"batch_size": -1}, "batch_size"),
    ({"lr": 0.0}, "lr"), ({"ema_decay": 1.0}, "ema_decay"), ({"schedule": "quadratic"}, "schedule"),
    ({"precision": "fp8"}, "precision"), ({"warmup_steps": -1}, "warmup_steps"),
    ({"max_grad_norm": 0.0}, "max_grad_norm"), ({"T": 0}, "T"), ({"prediction": "score"}, "prediction"),
    ({"model": [1, 2]}, "model"), ({"device": "gpu"}, "device"), ({"device": "cuda:x"}, "device"),
])
def test_bad_config_values_name_the_argument(overrides, name):
    with pytest.raises(ValueError, match=name):
        toy_config(**overrides)


def test_unknown_config_keys_and_devices_are_rejected():
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"stepz": 3})
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_the_trainer_uses_the_rescaled_linear_schedule():
    for T in [50, 1000]:
        assert torch.equal(build_schedule(toy_config(T=T)).betas, NoiseSchedule.linear(T, rescale=True).betas)
    with pytest.raises(ValueError, match="too small"):
        build_schedule(toy_config(T=20))


def test_a_disabled_grad_scaler_matches_plain_float32():
    s = NoiseSchedule.linear(T=10)
    results = []
    for scaler in [None, torch.amp.GradScaler("cpu", enabled=False)]:
        torch.manual_seed(0)
        model = ExplodesAt(at_call=10**9)  # a plain linear eps-net that never explodes
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        objective = training_objective(toy_config(), s)
        optimisation_step(model, opt, objective, Batch(torch.ones(8, 2)), generator=torch.Generator().manual_seed(0),
                          scaler=scaler, max_grad_norm=0.5)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_a_run_can_train_and_reload_an_x0_or_v_network(tmp_path, prediction):
    train(toy_config(steps=6, prediction=prediction), out=tmp_path, progress=False)
    _, _, config = load_model(tmp_path / "checkpoint.pt")
    assert config.prediction == prediction


def test_flush_subnormals_restores_the_previous_mode():
    def flushing():
        return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0

    from ddpm_scratch.machinery.train import flush_subnormals
    assert not flushing()  # the IEEE default
    with flush_subnormals():
        assert flushing()
        with flush_subnormals():
            assert flushing()
        assert flushing()
    assert not flushing()
    train(toy_config(steps=2), progress=False)
    assert not flushing()


def test_resuming_on_another_kind_of_device_is_a_clear_error(tmp_path):
    """A CPU generator's state does not fit a CUDA generator: faked here by a checkpoint whose noise generator
    state has the wrong size, which is what a run moved between a CPU and a GPU machine meets."""
    train(toy_config(steps=4), out=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    torch.save(state | {"noise_rng": torch.zeros(16, dtype=torch.uint8)}, path)  # a CUDA generator's state size
    with pytest.raises(ValueError, match="another kind of device"):
        train(toy_config(steps=6), out=tmp_path, resume=True, progress=False)


# ---------------------------------------------------------------------------------- conditional runs

class RecordsLabels(torch.nn.Module):
    """A small MLP eps-net that keeps the labels it is called with (one entry per call; None without labels)."""

    def __init__(self, num_classes=None):
        super().__init__()
        self.net = MLPEps(dim=2, hidden=16, depth=1, num_classes=num_classes)
        self.labels = []

    def forward(self, x_t, t, *y):
        assert len(y) <= 1
        self.labels.append(y[0].clone() if y else None)
        return self.net(x_t, t, *y)


def test_a_conditional_run_calls_the_network_with_its_labels_some_dropped(monkeypatch):
    """two_moons has 2 classes: num_classes=2 trains on its labels 0, 1, each replaced by the "no label" token 2
    with probability label_dropout. The loop gets the training split's points with their own labels (recorded on
    the way in; test_loop.py checks that a batch's labels are its examples')."""
    import ddpm_scratch.machinery.train as train_module

    given = {}

    def recording_loop(model, updates, data, loop_settings, **options):
        given.update(data=data, labels=options["labels"])
        return run_loop(model, updates, data, loop_settings, **options)

    monkeypatch.setattr(train_module, "run_loop", recording_loop)
    steps, batch_size, rate = 12, 32, 0.25
    model = RecordsLabels(num_classes=2)
    train(toy_config(steps=steps, batch_size=batch_size, num_classes=2, label_dropout=rate), model=model,
          progress=False)
    points, labels = load_dataset("two_moons", "train")
    assert torch.equal(given["data"], points) and torch.equal(given["labels"], labels)
    train(toy_config(steps=1), progress=False)
    assert given["labels"] is None  # an unconditional run hands the loop no labels
    assert len(model.labels) == steps and all(y.shape == (batch_size,) and y.dtype == torch.long
                                              for y in model.labels)
    y = torch.cat(model.labels)
    assert set(y.unique().tolist()) == {0, 1, 2}
    n, dropped = len(y), (y == 2).sum().item()
    assert abs(dropped - n * rate) < 5 * math.sqrt(n * rate * (1 - rate))  # Binomial(n, rate)
    kept = y[y != 2].double()
    assert abs(kept.mean().item() - 0.5) < 5 * math.sqrt(0.25 / len(kept))  # the moons are drawn equally often


def test_the_conditional_objective_drops_labels_then_draws_l_simple():
    """training_objective with num_classes > 0: the network gets drop_labels(batch.y) and L_simple's t and eps,
    all from the objective's generator in that order (the draws replayed here)."""
    config = toy_config(num_classes=2, label_dropout=0.5)
    schedule = build_schedule(config)
    x0, y = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), torch.randint(0, 2, (64,))
    model = RecordsLabels(num_classes=2)
    loss = training_objective(config, schedule)(model, Batch(x0, y), generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    expected_y = drop_labels(y, rate=0.5, num_classes=2, generator=g)
    assert torch.equal(model.labels[0], expected_y) and (expected_y == 2).any() and (expected_y != 2).any()
    expected = l_simple(lambda x_t, t: model.net(x_t, t, expected_y), schedule, x0, generator=g)
    assert torch.equal(loss, expected)


def test_a_conditional_run_reloads_as_a_network_that_takes_labels(tmp_path):
    train(toy_config(steps=4, num_classes=2), out=tmp_path, progress=False)
    network, schedule, config = load_network(tmp_path / "checkpoint.pt")
    assert config.num_classes == 2 and network.num_classes == 2
    eps_model, _, _ = load_model(tmp_path / "checkpoint.pt")
    x, t = torch.randn(6, 2), torch.randint(1, 51, (6,))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(eps_model(x, t, y), network(x, t, y))
    x0 = sample(LabelBound(eps_model, 1), schedule, (5, 2), num_steps=3, generator=torch.Generator().manual_seed(0))
    assert x0.shape == (5, 2) and torch.isfinite(x0).all()


def test_an_unconditional_run_is_l_simple_on_the_loop_without_labels():
    """num_classes = 0 (the default): the network is never given labels, label_dropout changes nothing, and the run
    is bit for bit the loop on L_simple with train's generators (batches: seed + 1, t and eps: seed + 2; the
    network here is built by the test, so its initial weights are the test's)."""
    results = []
    for rate in (0.1, 0.9):
        torch.manual_seed(0)  # the initial weights of the network given to train
        model = RecordsLabels()
        results.append(train(toy_config(steps=6, label_dropout=rate), model=model, progress=False))
        assert len(model.labels) == 6 and all(y is None for y in model.labels)
    for a, b in zip(results[0].model.state_dict().values(), results[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    config = toy_config(steps=6)
    schedule = build_schedule(config)
    torch.manual_seed(0)
    model = RecordsLabels()
    reference = run_loop(
        model, [Update("loss", lambda m, batch, *, generator: l_simple(m, schedule, batch.x0, generator=generator))],
        load_dataset("two_moons", "train")[0], config.loop_settings(), data_rng=torch.Generator().manual_seed(1),
        noise_rng=torch.Generator().manual_seed(2), progress=False)
    for a, b in zip(results[0].model.state_dict().values(), reference.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("overrides, message", [
    (dict(dataset="two_moons", num_classes=3), r"num_classes must be 0 \(unconditional\) or 2, the number of "
                                               r"classes of two_moons, got 3"),
    (dict(dataset="two_moons", num_classes=1), r"num_classes must be 0 \(unconditional\) or 2"),
    (dict(dataset="digits", num_classes=2), r"num_classes must be 0 \(unconditional\) or 10"),
    (dict(dataset="swiss_roll", num_classes=2), "num_classes must be 0: swiss_roll has no labels, got 2"),
    (dict(dataset="checkerboard", num_classes=8), "num_classes must be 0: checkerboard has no labels"),
    (dict(num_classes=-1), "num_classes must be >= 0"),
    (dict(label_dropout=1.5), r"label_dropout must lie in \[0, 1\]"),
])
def test_num_classes_is_zero_or_the_datasets_number_of_classes(overrides, message):
    with pytest.raises(ValueError, match=message):
        toy_config(**overrides)


def test_the_labelled_datasets_accept_their_number_of_classes():
    for dataset, classes in (("two_moons", 2), ("eight_gaussians", 8)):
        assert toy_config(dataset=dataset, num_classes=classes).num_classes == classes
    assert TrainConfig(dataset="digits", num_classes=10, device="cpu").num_classes == 10


def test_a_checkpoint_written_before_conditional_runs_existed_resumes(tmp_path):
    """A checkpoint whose config lacks the fields added since (num_classes, label_dropout) and whose optimizer is
    stored in the single-optimizer format resumes: the saved config is read through TrainConfig, which gives the
    new fields their defaults, before it is compared with the run's."""
    train(toy_config(steps=5), out=tmp_path / "old", progress=False)
    path = tmp_path / "old" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    config = {k: v for k, v in state["config"].items() if k not in ("num_classes", "label_dropout")}
    old = {k: v for k, v in state.items() if k not in ("optimizers", "lr_schedules", "data_rng_start")}
    torch.save(old | {"config": config, "optimizer": state["optimizers"]["loss"],
                      "lr_schedule": state["lr_schedules"]["loss"]}, path)
    resumed = train(toy_config(steps=10), out=tmp_path / "old", resume=True, progress=False)
    straight = train(toy_config(steps=10), out=tmp_path / "new", progress=False)
    for name, p in straight.model.state_dict().items():
        assert torch.equal(p, resumed.model.state_dict()[name]), name
