"""The application runs' frame (machinery.applications): cached stages, the registry, `ddpm-scratch apply`."""

import pytest
import torch
from torch import nn

from ddpm_scratch.machinery import applications as apps
from ddpm_scratch.machinery.applications import APPLICATIONS, applications, fit
from ddpm_scratch.machinery.cli import main
from ddpm_scratch.machinery.loop import CHECKPOINT, Checkpoint, LoopSettings


def regression(model, batch, *, generator=None):
    return (model(batch.x0) - 2 * batch.x0).pow(2).mean()


def build():
    return nn.Linear(3, 3)


def test_fit_trains_once_then_loads_and_refuses_other_settings(tmp_path, monkeypatch):
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    settings = LoopSettings(steps=30, batch_size=16, lr=1e-2, ema_decay=0.9, checkpoint_every=10)
    first = fit(build, regression, data, settings, out=tmp_path, record={"what": "linear"}, seed=3, progress=False)
    assert Checkpoint.load(tmp_path / CHECKPOINT).step == 30

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage must be loaded, not trained again")

    monkeypatch.setattr(apps, "run_loop", no_training)
    again = fit(build, regression, data, settings, out=tmp_path, record={"what": "linear"}, seed=3, progress=False)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="other settings"):
        fit(build, regression, data, settings, out=tmp_path, record={"what": "another"}, seed=3, progress=False)


def test_fit_resumes_an_interrupted_stage_to_the_same_weights(tmp_path):
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    short = LoopSettings(steps=10, batch_size=16, lr=1e-2, ema_decay=0.9, checkpoint_every=10)
    full = LoopSettings(steps=20, batch_size=16, lr=1e-2, ema_decay=0.9, checkpoint_every=10)
    fit(build, regression, data, short, out=tmp_path / "a", record={}, seed=1, progress=False)
    resumed = fit(build, regression, data, full, out=tmp_path / "a", record={}, seed=1, progress=False)
    straight = fit(build, regression, data, full, out=tmp_path / "b", record={}, seed=1, progress=False)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_every_registered_application_is_listed(capsys):
    assert main(["apply", "--list"]) == 0
    listed = capsys.readouterr().out
    assert set(applications()) >= {"sdedit", "inpaint", "ilvr"}
    for name in APPLICATIONS:
        assert name in listed


def test_apply_refuses_an_unknown_name():
    with pytest.raises(SystemExit):
        main(["apply", "no-such-application"])


def test_quick_pixel_applications_write_pictures_and_reports(tmp_path, capsys):
    """The three runs on the shared pixel model, quick: each writes its picture and report; the inpainted known
    pixels and ILVR's low-pass are exact whatever the (barely trained) model."""
    assert main(["apply", "sdedit", "inpaint", "ilvr", "--quick", "--out", str(tmp_path), "--device", "cpu"]) == 0
    for name, picture in [("sdedit", "sdedit.png"), ("inpaint", "inpaint.png"), ("ilvr", "ilvr.png")]:
        assert (tmp_path / name / picture).stat().st_size > 1000
        assert picture in (tmp_path / name / "report.md").read_text()
    rows = {}
    for name in ("inpaint", "ilvr"):
        for line in (tmp_path / name / "report.md").read_text().splitlines():
            if line.startswith("| ") and line.count("|") == 3:
                key, value = line.strip("| ").split(" | ")
                rows[key] = value
    known = [float(v) for k, v in rows.items() if "largest change of a known pixel" in k and "Palette" not in k]
    gaps = [float(v) for k, v in rows.items() if "largest low-pass gap" in k]
    assert len(known) == 2 and known == [0.0, 0.0]  # replacement and RePaint (the conditional model only nears them)
    assert len(gaps) == 3 and max(gaps) < 1e-4
    assert "realism" in capsys.readouterr().out  # the reports were printed too
