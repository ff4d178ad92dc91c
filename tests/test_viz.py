"""Pictures: grids map [-1, 1] to 0..255 and tile in order; files are readable images."""

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_scratch.machinery.viz import image_grid, plot_loss, save_gif, save_grid, save_scatter, save_strip, to_uint8


def test_to_uint8_maps_the_data_range_and_clips():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 2, 2)
    assert to_uint8(x).reshape(-1).tolist() == [0, 128, 255, 255]


def test_image_grid_tiles_images_in_row_major_order():
    x = torch.stack([torch.full((1, 2, 3), v) for v in [-1.0, 1.0, -1.0]])  # black, white, black
    grid = image_grid(x, nrow=2, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
    assert (grid[1:3, 1:4] == 0).all() and (grid[1:3, 5:8] == 255).all() and (grid[4:6, 1:4] == 0).all()
    assert (grid[4:6, 5:8] == 255).all()  # the empty cell stays background
    assert image_grid(x, nrow=2, pad=1, scale=3).shape == (21, 27, 1)


def test_saved_pictures_are_readable(tmp_path):
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    with Image.open(save_grid(x, tmp_path / "g.png", nrow=3, scale=2)) as im:
        assert im.size == (2 * (3 * 9 + 1), 2 * (2 * 9 + 1)) and im.mode == "RGB"
    frames = torch.rand(4, 2, 1, 8, 8) * 2 - 1
    with Image.open(save_gif(frames, tmp_path / "a.gif")) as im:
        assert im.n_frames == 4
    with Image.open(save_strip(frames, [30, 20, 10, 0], tmp_path / "s.png")) as im:
        assert im.size[0] > im.size[1]
    steps = np.arange(1, 101)
    assert save_scatter(torch.randn(50, 2), tmp_path / "p.png", reference=torch.randn(50, 2)).stat().st_size > 0
    assert plot_loss(steps, 1 / steps, tmp_path / "l.png").stat().st_size > 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_grid(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(K, B, C, H, W\)"):
        save_gif(torch.zeros(3, 1, 8, 8), "x.gif")
    with pytest.raises(ValueError, match="one entry per frame"):
        save_strip(torch.zeros(2, 1, 1, 8, 8), [1], "x.png")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        save_scatter(torch.zeros(3, 3), "x.png")


def test_image_table_draws_one_labelled_picture():
    from matplotlib.figure import Figure

    from ddpm_scratch.machinery.viz import image_table
    ax = Figure().subplots()
    image_table(ax, torch.zeros(2, 3, 1, 8, 8), ["a", "b", "c"], ["r1", "r2"])
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (2 * 9 + 1, 3 * 9 + 1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="col_labels"):
        image_table(ax, torch.zeros(2, 3, 1, 8, 8), ["a"])
    with pytest.raises(ValueError, match=r"\(R, C, channels, H, W\)"):
        image_table(ax, torch.zeros(3, 1, 8, 8), ["a"])
