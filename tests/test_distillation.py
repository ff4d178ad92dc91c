"""machinery/distillation.py and `ddpm-scratch distill`: student files, resuming by stage, sampling a student, clear
errors. (The stage itself, on exact Gaussian teachers: tests/test_distill.py.)"""

import re

import pytest
import torch

from ddpm_scratch.machinery.cli import main
from ddpm_scratch.machinery.data import get_dataset
from ddpm_scratch.machinery.distillation import (
    DistillConfig,
    StudentFile,
    distill_run,
    load_student,
    progressive_distillation,
    weights_fingerprint,
)
from ddpm_scratch.machinery.train import load_network
from ddpm_scratch.sampling import sample

SMALL = ["--iterations", "3", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny two-moons run (T = 64, so that 8, 4 and 2 uniform steps nest)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--dataset", "two_moons", "--T", "64", "--steps", "5", "--batch-size", "16",
                 "--model", '{"hidden": 16, "depth": 2}', "--device", "cpu", "--out", str(out)]) == 0
    return out


def weights(path):
    return StudentFile.load(path).model


def test_distill_writes_a_student_per_stage_equal_to_the_library_loop(run, tmp_path):
    """8 -> 4 -> 2 steps: student_4.pt and student_2.pt, each holding the EMA student that
    `distill.progressive_distillation` returns for the same teacher, data, seeds and options."""
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "2", "--seed", "3", *SMALL,
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["student_2.pt", "student_4.pt"]
    teacher, schedule, config = load_network(run / "checkpoint.pt")
    stages = progressive_distillation(teacher, schedule, get_dataset("two_moons", "train"), 8, 2, seed=3,
                                      prediction=config.prediction,
                                      iterations=3, batch_size=16, lr=DistillConfig().lr,
                                      ema_decay=DistillConfig().ema_decay)
    for stage in stages:
        file = StudentFile.load(out / f"student_{stage.num_steps}.pt")
        assert file.num_steps == stage.num_steps and file.teacher_weights == weights_fingerprint(teacher)
        for name, tensor in stage.student.state_dict().items():
            torch.testing.assert_close(file.model[name], tensor, rtol=0, atol=0)


def test_a_v_prediction_run_distils_into_a_v_student_sampled_as_an_eps_model(tmp_path):
    """The stage starts the student as a copy of the teacher network (here a v-network) and regresses in its
    parameterisation; the file holds that network, and load_student adapts it once: eps = sqrt(abar) v +
    sqrt(1 - abar) x_t (written out here). The students equal progressive_distillation's on the network."""
    run = tmp_path / "v"
    assert main(["train", "--dataset", "two_moons", "--T", "64", "--steps", "5", "--batch-size", "16",
                 "--prediction", "v", "--model", '{"hidden": 16, "depth": 2}', "--device", "cpu",
                 "--out", str(run)]) == 0
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", *SMALL,
                 "--out", str(out)]) == 0
    teacher, schedule, config = load_network(run / "checkpoint.pt")
    assert config.prediction == "v"
    (stage,) = progressive_distillation(teacher, schedule, get_dataset("two_moons", "train"), 4, 2,
                                        prediction="v", iterations=3, batch_size=16, lr=DistillConfig().lr,
                                        ema_decay=DistillConfig().ema_decay)
    for name, tensor in stage.student.state_dict().items():
        torch.testing.assert_close(weights(out / "student_2.pt")[name], tensor, rtol=0, atol=0)
    model, schedule, _, file = load_student(out / "student_2.pt")
    x, t = torch.randn(8, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([64, 32] * 4)
    abar = schedule.alpha_bars[t].float()[:, None]
    with torch.no_grad():
        expected = abar.sqrt() * stage.student(x, t) + (1 - abar).sqrt() * x
        torch.testing.assert_close(model(x, t), expected)
    assert file.num_steps == 2


def test_a_resumed_run_writes_the_students_of_an_uninterrupted_one(run, tmp_path):
    """Stopping after 8 -> 4 and resuming to 2 leaves student_4.pt alone and gives the same student_2.pt as one run
    straight to 2 (stage s is seeded with seed + s, and the next teacher is read back from student_4.pt)."""
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "2", *SMALL,
                 "--out", str(straight)]) == 0
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "4", *SMALL,
                 "--out", str(halves)]) == 0
    first = (halves / "student_4.pt").read_bytes()
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "2", *SMALL, "--resume",
                 "--out", str(halves)]) == 0
    assert (halves / "student_4.pt").read_bytes() == first
    for n in (4, 2):
        for name, tensor in weights(straight / f"student_{n}.pt").items():
            torch.testing.assert_close(weights(halves / f"student_{n}.pt")[name], tensor, rtol=0, atol=0)
    paths = distill_run(run / "checkpoint.pt", halves, DistillConfig(from_steps=8, to_steps=2, iterations=3,
                                                                     batch_size=16), resume=True, progress=False)
    assert [p.name for p in paths] == ["student_4.pt", "student_2.pt"]  # nothing left to do: nothing rewritten
    assert (halves / "student_4.pt").read_bytes() == first


def test_a_student_samples_with_its_own_ddim_steps(run, tmp_path):
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "4", *SMALL,
                 "--out", str(out)]) == 0
    picture = tmp_path / "four.png"
    assert main(["sample", "--checkpoint", str(out / "student_4.pt"), "--n", "32", "--seed", "5", "--out",
                 str(picture), "--device", "cpu"]) == 0
    student, schedule, config, file = load_student(out / "student_4.pt")
    assert config.dataset == "two_moons" and file.num_steps == 4
    x_T = torch.randn((32, 2), generator=torch.Generator().manual_seed(5))
    expected = sample(student, schedule, (32, 2), sampler="ddim", num_steps=4, x_T=x_T)
    torch.testing.assert_close(torch.load(picture.with_suffix(".pt")), expected)
    assert picture.stat().st_size > 0


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "ddpm"], "--sampler ddpm"),
    (["--num-steps", "8"], "--num-steps 8"),
    (["--spacing", "quadratic"], "--spacing quadratic"),
    (["--eta", "1"], "--eta 1"),
    (["--no-ema"], "--no-ema"),
])
def test_a_student_refuses_other_samplers_and_steps(run, tmp_path, capsys, extra, message):
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", *SMALL,
                 "--out", str(out)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--checkpoint", str(out / "student_2.pt"), "--device", "cpu", "--out",
              str(tmp_path / "x.png"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "samples only with deterministic DDIM on its own 2 uniform steps" in err and message in err


def test_a_student_refuses_the_options_of_other_samplers(run, tmp_path, capsys):
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", *SMALL,
                 "--out", str(out)]) == 0
    for extra, message in ((["--order", "1"], "--order is an option of unipc, not of --sampler ddim"),
                           (["--snr", "0.1"], "--snr is an option of pc, not of --sampler ddim")):
        with pytest.raises(SystemExit) as exit_info:
            main(["sample", "--checkpoint", str(out / "student_2.pt"), "--device", "cpu", "--out",
                  str(tmp_path / "x.png"), *extra])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_nothing_is_overwritten_and_resume_checks_the_settings(run, tmp_path, capsys):
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", *SMALL,
                 "--out", str(out)]) == 0
    before = (out / "student_2.pt").read_bytes()
    for argv, message in ((["--iterations", "3"], r"already holds student_2\.pt; pass --resume"),
                          (["--iterations", "4", "--resume"], r"other settings \(iterations differ\)"),
                          (["--iterations", "3", "--resume", "--lr", "1e-3"], r"other settings \(lr differ\)")):
        with pytest.raises(SystemExit) as exit_info:
            main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", "--batch-size", "16",
                  "--device", "cpu", "--out", str(out), *argv])
        assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)
    assert (out / "student_2.pt").read_bytes() == before


def test_resume_refuses_students_of_another_teacher(run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "--dataset", "two_moons", "--T", "64", "--steps", "5", "--batch-size", "16", "--seed", "1",
                 "--model", '{"hidden": 16, "depth": 2}', "--device", "cpu", "--out", str(other)]) == 0
    out = tmp_path / "students"
    assert main(["distill", "--run", str(run), "--from-steps", "4", "--to-steps", "2", *SMALL,
                 "--out", str(out)]) == 0
    with pytest.raises(SystemExit):
        main(["distill", "--run", str(other), "--from-steps", "4", "--to-steps", "2", *SMALL, "--resume",
              "--out", str(out)])
    assert "the teacher checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--from-steps", "12", "--to-steps", "4"], "power of 2"),
    (["--from-steps", "8", "--to-steps", "8"], "power of 2"),
    (["--weighting", "mse"], "invalid choice"),
    (["--spacing", "quadratic"], "invalid choice"),  # its N / 2 steps are not every other one of its N
    (["--lr", "0"], r"lr must lie in \(0, inf\]"),
    (["--iterations", "0"], "iterations must be >= 1"),
])
def test_bad_distill_arguments_exit_with_a_clear_message(run, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--run", str(run), "--out", str(tmp_path / "s"), "--device", "cpu", *argv])
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


def test_a_spoilt_student_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "student_4.pt").write_bytes(b"garbage")
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(tmp_path / "student_4.pt"), "--device", "cpu"])
    assert "student_4.pt is not a readable checkpoint or student file" in capsys.readouterr().err
    torch.save({"kind": "something else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a ddpm-scratch student file"):
        load_student(tmp_path / "foreign.pt")


def test_students_written_before_conditional_runs_existed_resume(run, tmp_path):
    """A student file whose teacher config lacks the fields added since (num_classes, label_dropout) resumes: its
    config is read through TrainConfig, which gives the new fields their defaults, before it is compared."""
    out = tmp_path / "old"
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "4", *SMALL, "--out", str(out)]) == 0
    path = out / "student_4.pt"
    state = torch.load(path, weights_only=False)
    state["teacher_config"] = {k: v for k, v in state["teacher_config"].items()
                               if k not in ("num_classes", "label_dropout")}
    torch.save(state, path)
    assert main(["distill", "--run", str(run), "--from-steps", "8", "--to-steps", "2", *SMALL, "--resume",
                 "--out", str(out)]) == 0
    assert (out / "student_2.pt").exists()
