"""The trainer: exact resume, atomic checkpoints, NaN stop, EMA, warm-up, precision, config checks."""

import csv
import math

import pytest
import torch

from ddpm_scratch.machinery.files import UnreadableFile, atomic_save, load_torch_file
from ddpm_scratch.machinery.train import (
    EMA,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    load_model,
    optimisation_step,
    select_device,
    train,
    training_loss,
)
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
    with pytest.raises(ValueError, match="config differs"):
        train(toy_config(steps=10, lr=1e-4), out=tmp_path, resume=True, progress=False)
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
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 8.*last good checkpoint"):
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
    for load in (lambda: load_checkpoint(path), lambda: load_model(path),
                 lambda: train(toy_config(steps=10), out=tmp_path, resume=True, progress=False)):
        with pytest.raises(UnreadableFile, match=message) as error:
            load()
        assert str(path) in str(error.value)


def test_ema_follows_its_recursion():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    expected = start.clone()
    for n in range(1, 30):
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * 1.0
    assert torch.allclose(ema.model.weight, expected, atol=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters())


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
    from ddpm_scratch.machinery.train import build_schedule
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
        loss_fn = training_loss(toy_config(), s, torch.Generator().manual_seed(0))
        optimisation_step(model, opt, loss_fn, torch.ones(8, 2), scaler=scaler, max_grad_norm=0.5)
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
