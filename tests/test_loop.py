"""machinery/loop.py, the one training loop: exact resume (independent batches and epochs), several updates on
disjoint parameters, the learning-rate schedule, the NaN stop, the EMA, old checkpoints, labelled batches.

Every run here is a two-by-two linear layer on a few points, so that each test takes a fraction of a second."""

import csv
import math

import pytest
import torch
from torch import nn

from ddpm_scratch.machinery.files import UnreadableFile
from ddpm_scratch.machinery.loop import (
    CHECKPOINT,
    EMA,
    LOSS_LOG,
    Batch,
    Checkpoint,
    LoopSettings,
    TrainingDiverged,
    Update,
    optimisation_step,
    run_loop,
)


class Tiny(nn.Module):
    """A linear map behind dropout: dropout draws from torch's global generator, which a resume must restore too."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        return self.lin(self.drop(x))


def denoise(model, batch, *, generator=None):
    """Draws its own noise from the loop's noise generator, so that a resume must restore that one as well."""
    noise = torch.randn(batch.x0.shape, generator=generator)
    return (model(batch.x0 + noise) - batch.x0).pow(2).mean()


class Interrupted(Exception):
    """Stands for a run killed part-way (the machine lost, Ctrl-C)."""


def stops_after(steps, objective=denoise):
    """`objective`, raising Interrupted on its call steps + 1 (one call per step with one update)."""
    calls = [0]

    def wrapped(model, batch, *, generator=None):
        calls[0] += 1
        if calls[0] > steps:
            raise Interrupted
        return objective(model, batch, generator=generator)

    return wrapped


def points(n, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def settings(**overrides):
    base = dict(steps=9, batch_size=4, lr=0.05, warmup_steps=3, lr_decay="linear", max_grad_norm=0.5,
                ema_decay=0.9, weight_decay=0.01, log_every=1, checkpoint_every=5)
    return LoopSettings(**(base | overrides))


def run(data, loop_settings, *, out=None, resume=False, objective=denoise, seed=0, record=None, labels=None):
    torch.manual_seed(seed)  # the initial weights (a resume overwrites them) and dropout
    return run_loop(Tiny(), [Update("loss", objective)], data, loop_settings, labels=labels, out=out,
                    data_rng=torch.Generator().manual_seed(seed + 1), noise_rng=torch.Generator().manual_seed(seed + 2),
                    record={"run": "tiny"} if record is None else record, resume=resume, progress=False)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same(a, b, where="checkpoint"):
    """Nested dicts, lists and tensors equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


# ---------------------------------------------------------------------------------- exact resume

@pytest.mark.parametrize("batch_order", ["independent", "epochs"])
def test_a_run_stopped_and_resumed_equals_an_uninterrupted_one(tmp_path, batch_order):
    """Killed during step 6 after the checkpoint at step 5, then resumed to 9: the same weights, EMA, optimizer and
    lr-schedule states, generators and loss log as one run of 9 steps. With 10 points in batches of 4 an epoch is 2
    batches (the last 2 points dropped), so step 5 ends in the middle of the third epoch. The resumed call gets
    generators seeded differently and a model initialised differently: everything must come from the checkpoint."""
    data = points(10)
    loop_settings = settings(batch_order=batch_order)
    straight = run(data, loop_settings, out=tmp_path / "straight")
    with pytest.raises(Interrupted):
        run(data, loop_settings, out=tmp_path / "stopped", objective=stops_after(5))
    assert Checkpoint.load(tmp_path / "stopped" / CHECKPOINT).step == 5
    resumed = run(data, loop_settings, out=tmp_path / "stopped", resume=True, seed=7)
    assert resumed.step == straight.step == 9
    assert_same(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same(straight.ema_model.state_dict(), resumed.ema_model.state_dict(), "ema")
    a, b = (Checkpoint.load(tmp_path / name / CHECKPOINT) for name in ("straight", "stopped"))
    assert a.step == 9 and a.optimizers.keys() == {"loss"}
    for name in ("config", "step", "model", "ema", "optimizers", "lr_schedules", "scaler", "data_rng",
                 "data_rng_start", "noise_rng", "torch_rng"):
        assert_same(getattr(a, name), getattr(b, name), name)
    assert rows(tmp_path / "straight" / LOSS_LOG) == rows(tmp_path / "stopped" / LOSS_LOG)
    assert [int(r["step"]) for r in rows(tmp_path / "stopped" / LOSS_LOG)] == list(range(1, 10))
    assert resumed.history["loss"] == straight.history["loss"][5:]  # this call's steps


def test_the_resume_test_can_fail_a_resume_that_starts_afresh(tmp_path):
    """The comparison above sees a run that does not restore its state: restarting from scratch to 9 steps with the
    resumed call's seeds gives other weights."""
    data = points(10)
    straight = run(data, settings(), out=tmp_path / "a")
    fresh = run(data, settings(), out=tmp_path / "b", seed=7)
    assert not torch.equal(straight.model.lin.weight, fresh.model.lin.weight)


def test_resume_refuses_another_record_and_needs_an_output_folder(tmp_path):
    data = points(10)
    run(data, settings(steps=3), out=tmp_path, record={"lr": 1.0, "steps": 3})
    with pytest.raises(ValueError, match=r"config differs from the checkpoint's in more than `steps`.*'lr': 1\.0"):
        run(data, settings(steps=6), out=tmp_path, resume=True, record={"lr": 2.0, "steps": 6})
    assert Checkpoint.load(tmp_path / CHECKPOINT).step == 3  # nothing written
    run(data, settings(steps=6), out=tmp_path, resume=True, record={"lr": 1.0, "steps": 6})  # steps may change
    assert Checkpoint.load(tmp_path / CHECKPOINT).step == 6
    with pytest.raises(ValueError, match="resume needs an output folder"):
        run(data, settings(), resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(data, settings(), out=tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="the checkpoint is at step 6, beyond steps=4"):
        run(data, settings(steps=4), out=tmp_path, resume=True, record={"lr": 1.0, "steps": 4})


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    """A checkpoint already at `steps`: no step is taken, the weights are the checkpoint's and the losses NaN."""
    data = points(10)
    done = run(data, settings(), out=tmp_path)
    before = (tmp_path / CHECKPOINT).read_bytes()
    again = run(data, settings(), out=tmp_path, resume=True, seed=7)
    assert_same(done.model.state_dict(), again.model.state_dict(), "model")
    assert again.step == 9 and math.isnan(again.final_losses["loss"]) and again.history == {"loss": []}
    assert (tmp_path / CHECKPOINT).read_bytes() == before


# ---------------------------------------------------------------------------------- two updates

class Pair(nn.Module):
    """Two parameter groups, as a GAN's generator and discriminator: each objective depends on both."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 1)


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_two_updates_each_move_only_their_own_parameters(tmp_path):
    """Update "A" moves pair.a, then "B" moves pair.b, on the same batch: the state seen at the start of B's
    objective is the one A's step left, and the state seen at the start of the next A is the one B's step left.
    Both objectives send gradients to both groups, and AdamW's weight decay would move any parameter it holds."""
    seen = {"A": [], "B": []}

    def objective(name, sign):
        def loss(model, batch, *, generator=None):
            seen[name].append(snapshot(model))
            return sign * model.b(torch.tanh(model.a(batch.x0))).mean() + 0.1 * model.a.weight.pow(2).sum()
        return loss

    torch.manual_seed(0)
    model = Pair()
    updates = [Update("A", objective("A", 1.0), parameters=lambda m: m.a.parameters()),
               Update("B", objective("B", -1.0), parameters=lambda m: m.b.parameters())]
    steps = 4
    result = run_loop(model, updates, points(16), LoopSettings(steps=steps, batch_size=8, lr=0.1, weight_decay=0.1,
                                                               max_grad_norm=1.0, log_every=1, checkpoint_every=2),
                      data_rng=torch.Generator().manual_seed(1), noise_rng=torch.Generator().manual_seed(2),
                      out=tmp_path, progress=False)
    after = seen["A"][1:] + [snapshot(result.model)]  # the state after step s = the state at the start of step s + 1
    for s in range(steps):
        before_a, before_b = seen["A"][s], seen["B"][s]
        for name in before_a:
            moved_by_a = not torch.equal(before_a[name], before_b[name])
            moved_by_b = not torch.equal(before_b[name], after[s][name])
            assert moved_by_a == name.startswith("a."), (s, name)
            assert moved_by_b == name.startswith("b."), (s, name)
    assert result.history.keys() == {"A", "B"} and all(len(v) == steps for v in result.history.values())
    assert result.final_losses.keys() == {"A", "B"}
    log = rows(tmp_path / LOSS_LOG)
    assert list(log[0]) == ["step", "A", "B", "lr"]
    for r, a, b in zip(log, result.history["A"], result.history["B"], strict=True):
        assert float(r["A"]) == pytest.approx(a, rel=1e-5) and float(r["B"]) == pytest.approx(b, rel=1e-5)
    state = Checkpoint.load(tmp_path / CHECKPOINT)
    assert state.optimizers.keys() == state.lr_schedules.keys() == {"A", "B"}


def test_updates_need_distinct_names():
    for updates in ([], [Update("x", denoise), Update("x", denoise)]):
        with pytest.raises(ValueError, match="distinct names"):
            run_loop(Tiny(), updates, points(8), settings(), data_rng=torch.Generator(),
                     noise_rng=torch.Generator(), progress=False)


# ---------------------------------------------------------------------------------- learning rate

@pytest.mark.parametrize("overrides, expected", [
    # warm-up over 4 steps: (step + 1) / 4 until it reaches 1; "linear" then multiplies by 1 - step / steps
    (dict(warmup_steps=4, lr_decay="constant"), {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0, 4: 1.0, 9: 1.0}),
    (dict(warmup_steps=4, lr_decay="linear"), {0: 0.25, 1: 0.5 * 0.9, 2: 0.75 * 0.8, 3: 0.7, 5: 0.5, 9: 0.1}),
    (dict(warmup_steps=0, lr_decay="linear"), {0: 1.0, 1: 0.9, 5: 0.5, 10: 0.0}),
    (dict(warmup_steps=0, lr_decay="constant"), {0: 1.0, 7: 1.0}),
])
def test_lr_factor_warms_up_then_stays_or_decays_linearly(overrides, expected):
    loop_settings = LoopSettings(steps=10, batch_size=1, lr=1.0, **overrides)
    for step, factor in expected.items():
        assert loop_settings.lr_factor(step) == pytest.approx(factor, abs=1e-12), step


def test_the_optimizer_uses_the_scheduled_lr(tmp_path):
    """Adam's first step moves every parameter by lr_0 g / (|g| + 1e-8), i.e. by the first step's lr (a quarter of
    lr under a warm-up of 4 steps); the loss log's lr after step k is the one step k + 1 uses, lr * lr_factor(k)."""
    loop_settings = settings(steps=6, warmup_steps=4, lr=0.01, weight_decay=0.0, max_grad_norm=None, ema_decay=None)
    torch.manual_seed(0)
    start = snapshot(Tiny())  # the initial weights of run(seed=0)
    one = run(points(10), settings(steps=1, warmup_steps=4, lr=0.01, weight_decay=0.0, max_grad_norm=None,
                                   ema_decay=None))
    for name, p in one.model.named_parameters():
        torch.testing.assert_close((p.detach() - start[name]).abs(), torch.full_like(p, 0.01 * 0.25),
                                   rtol=1e-4, atol=0)
    run(points(10), loop_settings, out=tmp_path)
    lrs = [float(r["lr"]) for r in rows(tmp_path / LOSS_LOG)]
    # min(1, (k + 1) / 4) (1 - k / 6) for k = 1..6: linear decay reaches 0 after the last step
    expected = [0.5 * 5 / 6, 0.75 * 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0]
    assert lrs == pytest.approx([0.01 * f for f in expected], rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("overrides, name", [
    (dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(batch_size=2.0), "batch_size"),
    (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"), (dict(lr=math.nan), "lr"),
    (dict(betas=(1.0, 0.999)), r"betas\[0\]"), (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (dict(weight_decay=-0.1), "weight_decay"), (dict(warmup_steps=-1), "warmup_steps"),
    (dict(lr_decay="cosine"), "lr_decay"), (dict(max_grad_norm=0.0), "max_grad_norm"),
    (dict(ema_decay=1.0), "ema_decay"), (dict(ema_decay=-0.5), "ema_decay"), (dict(precision="fp8"), "precision"),
    (dict(batch_order="shuffled"), "batch_order"), (dict(log_every=0), "log_every"),
    (dict(checkpoint_every=0), "checkpoint_every"),
])
def test_loop_settings_reject_bad_values_naming_the_field(overrides, name):
    with pytest.raises((TypeError, ValueError), match=rf"^{name} must"):
        LoopSettings(**(dict(steps=10, batch_size=4, lr=1e-3) | overrides))


def test_fp16_needs_a_cuda_device():
    """fp16 uses a GradScaler, which needs CUDA: data on the CPU is refused, whatever the machine has."""
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        run(points(8), settings(precision="fp16"))


# ---------------------------------------------------------------------------------- divergence

@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_names_its_step_and_keeps_the_last_good_checkpoint(tmp_path, bad):
    written = {}

    def objective(model, batch, *, generator=None):
        step = objective.calls = getattr(objective, "calls", 0) + 1
        if step == 6:  # the checkpoint of step 5 is on disk: remember its bytes
            written["bytes"] = (tmp_path / CHECKPOINT).read_bytes()
        loss = denoise(model, batch, generator=generator)
        return loss * bad if step >= 8 else loss

    with pytest.raises(TrainingDiverged, match=rf"the loss became \{{'loss': {bad}\}} at step 8.*"
                                                rf"last good checkpoint \({tmp_path / CHECKPOINT}\) is kept"):
        run(points(10), settings(steps=20), out=tmp_path, objective=objective)
    assert (tmp_path / CHECKPOINT).read_bytes() == written["bytes"]
    state = Checkpoint.load(tmp_path / CHECKPOINT)
    assert state.step == 5 and all(torch.isfinite(v).all() for v in state.model.values())
    assert [int(r["step"]) for r in rows(tmp_path / LOSS_LOG)] == list(range(1, 8))  # nothing logged for step 8


def test_a_divergence_before_any_checkpoint_says_so():
    with pytest.raises(TrainingDiverged, match=r"at step 1;.*\(none written yet\)"):
        run(points(10), settings(), objective=lambda model, batch, generator=None: model(batch.x0).sum() * math.nan)


# ---------------------------------------------------------------------------------- EMA

def test_ema_follows_its_recursion_with_the_warm_up():
    """theta_ema <- d theta_ema + (1 - d) theta with d = min(decay, (1 + n) / (10 + n)) at the n-th update."""
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
        torch.testing.assert_close(ema.model.weight, expected, rtol=0, atol=1e-6)
    assert ema.num_updates == 29
    assert not any(p.requires_grad for p in ema.model.parameters())
    restored = EMA(torch.nn.Linear(2, 1, bias=False), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 29 and torch.equal(restored.model.weight, ema.model.weight)


def test_the_loops_ema_after_one_step_is_the_warmed_up_average():
    """After one step d = min(0.999, 2 / 11) = 2 / 11: ema = 2/11 init + 9/11 trained. No EMA: ema_model is the
    model."""
    torch.manual_seed(0)
    init = snapshot(Tiny())
    result = run(points(10), settings(steps=1, ema_decay=0.999))
    for name, p in result.ema_model.named_parameters():
        torch.testing.assert_close(p, 2 / 11 * init[name] + 9 / 11 * result.model.get_parameter(name).detach())
    plain = run(points(10), settings(steps=1, ema_decay=None))
    assert plain.ema_model is plain.model


# ---------------------------------------------------------------------------------- old checkpoints

def test_an_old_single_optimizer_checkpoint_loads_as_the_update_loss_and_resumes(tmp_path):
    """The package before the one loop wrote optimizer/lr_schedule and no data_rng_start (the layout written here
    by hand from a new checkpoint of the same run): it loads as the update "loss", and resuming from it gives the
    uninterrupted run (independent batches need no data_rng_start)."""
    data = points(10)
    straight = run(data, settings(), out=tmp_path / "straight")
    with pytest.raises(Interrupted):
        run(data, settings(), out=tmp_path / "old", objective=stops_after(5))
    new = torch.load(tmp_path / "old" / CHECKPOINT, weights_only=True)
    old = {k: v for k, v in new.items() if k not in ("optimizers", "lr_schedules", "data_rng_start")}
    old |= {"optimizer": new["optimizers"]["loss"], "lr_schedule": new["lr_schedules"]["loss"]}
    torch.save(old, tmp_path / "old" / CHECKPOINT)
    state = Checkpoint.load(tmp_path / "old" / CHECKPOINT)
    assert_same(state.optimizers, {"loss": old["optimizer"]})
    assert_same(state.lr_schedules, {"loss": old["lr_schedule"]})
    assert torch.equal(state.data_rng_start, old["data_rng"]) and state.step == 5
    resumed = run(data, settings(), out=tmp_path / "old", resume=True)
    assert_same(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same(straight.ema_model.state_dict(), resumed.ema_model.state_dict(), "ema")


def test_a_file_lacking_a_field_is_not_a_checkpoint(tmp_path):
    torch.save({"config": {}, "step": 1, "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(UnreadableFile, match=r"partial\.pt is not a ddpm-scratch training checkpoint: it lacks ema"):
        Checkpoint.load(tmp_path / "partial.pt")


# ---------------------------------------------------------------------------------- labels and batches

@pytest.mark.parametrize("batch_order", ["independent", "epochs"])
def test_a_batch_carries_the_labels_of_its_own_examples(batch_order):
    """Example i is the point (i, -i) with label perm[i]: every batch's y is perm at its x0's indices."""
    n, batch_size, steps = 11, 4, 7
    data = torch.stack([torch.arange(n), -torch.arange(n)], dim=1).float()
    labels = torch.randperm(n, generator=torch.Generator().manual_seed(3)) + 100
    seen = []

    def objective(model, batch, *, generator=None):
        seen.append(batch)
        return model(batch.x0).pow(2).mean()

    run(data, settings(steps=steps, batch_order=batch_order, max_grad_norm=None), objective=objective, labels=labels)
    assert len(seen) == steps
    for batch in seen:
        index = batch.x0[:, 0].long()
        assert batch.x0.shape == (batch_size, 2) and torch.equal(batch.x0[:, 1], -batch.x0[:, 0])
        assert batch.y.dtype == torch.long and torch.equal(batch.y, labels[index])
    if batch_order == "epochs":  # 11 // 4 = 2 batches per epoch: no example twice within an epoch
        for first, second in zip(seen[0::2], seen[1::2], strict=False):
            assert len(torch.cat([first.x0[:, 0], second.x0[:, 0]]).unique()) == 2 * batch_size
    seen.clear()
    run(data, settings(steps=2), objective=objective)
    assert all(batch.y is None for batch in seen)


def test_optimisation_step_clips_the_gradient_of_its_optimizer():
    """max_grad_norm rescales the gradient to that norm before the SGD step; the loss returned is detached."""
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 4.0]]))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)

    def objective(m, batch, *, generator=None):
        return 1.25 * m.weight.pow(2).sum()  # gradient 2.5 w = (7.5, 10), norm 12.5

    loss = optimisation_step(model, optimizer, objective, Batch(torch.zeros(1, 2)), max_grad_norm=1.0)
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[3.0 - 0.6, 4.0 - 0.8]]))  # clipped to norm 1
    assert not loss.requires_grad and loss.item() == pytest.approx(1.25 * 25)


def test_raising_steps_on_resume_stretches_a_linear_decay(tmp_path):
    """A run resumed with more steps follows the new schedule from its first resumed step: the lr logged after
    step k is lr * lr_factor(k) of the new settings (the optimizer's lr is reset from the schedule on resume)."""
    short, longer = settings(steps=4, warmup_steps=0, checkpoint_every=4), settings(steps=8, warmup_steps=0)
    run(points(10), short, out=tmp_path)
    run(points(10), longer, out=tmp_path, resume=True)
    lrs = [float(r["lr"]) for r in rows(tmp_path / LOSS_LOG)]
    assert lrs[4:] == pytest.approx([0.05 * (1 - k / 8) for k in range(5, 9)], rel=1e-6, abs=1e-12)

    # the first resumed step runs at lr * lr_factor(4) = lr / 2, not at the old schedule's last lr, 0 (which would
    # leave every weight where the checkpoint has it: Adam's step and the decoupled weight decay both scale with lr)
    one_more = tmp_path / "one_more"
    run(points(10), short, out=one_more)
    at_four = Checkpoint.load(one_more / CHECKPOINT).model
    five = run(points(10), settings(steps=5, warmup_steps=0), out=one_more, resume=True).model.state_dict()
    assert all(not torch.equal(five[k], at_four[k]) for k in at_four)


def test_read_record_completes_an_old_record_and_names_an_invalid_one(tmp_path):
    """The saved record goes through read_record before the comparison: a record written before a field existed
    resumes when read_record fills the field in, and read_record's ValueError becomes an error naming the file."""
    run(points(10), settings(steps=5), out=tmp_path, record={"run": "tiny"})
    complete = lambda saved: {"added_later": 1, **saved}  # noqa: E731
    result = run_loop(Tiny(), [Update("loss", denoise)], points(10), settings(steps=6),
                      data_rng=torch.Generator().manual_seed(1), noise_rng=torch.Generator().manual_seed(2),
                      out=tmp_path, record={"run": "tiny", "added_later": 1}, read_record=complete, resume=True,
                      progress=False)
    assert result.step == 6

    def invalid(saved):
        raise ValueError("T must be >= 1, got 0")

    with pytest.raises(ValueError, match=r"checkpoint.pt holds an invalid training config: T must be >= 1"):
        run_loop(Tiny(), [Update("loss", denoise)], points(10), settings(steps=7), out=tmp_path,
                 data_rng=torch.Generator().manual_seed(1), noise_rng=torch.Generator().manual_seed(2),
                 record={"run": "tiny"}, read_record=invalid, resume=True, progress=False)


@pytest.mark.parametrize("labels", [torch.zeros(9, dtype=torch.long), torch.zeros(10), torch.zeros(10, 1).long()])
def test_labels_must_be_one_integer_per_example(labels):
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(N,\) = \(10,\)"):
        run(points(10), settings(steps=1), labels=labels)
