"""Files that must never be lost or half-written: checkpoints and the classifier cache.

`atomic_save` writes to a temporary file in the same folder, flushes it to disk (fsync) and renames it over the
target in one step, so a crash or a full disk leaves either the old file or the new one, never half of one.
`load_torch_file` reads one back and turns torch's raw errors for a missing, truncated or foreign file into an
error that names the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnreadableFile", "atomic_save", "load_torch_file"]


class UnreadableFile(ValueError):
    """A file exists but is not what it should be (truncated, corrupt or written by another program)."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save(obj) to `path` atomically: temporary file, fsync, rename. Creates the folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_torch_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """torch.load a file holding tensors, numbers, strings and containers of them (weights_only: no code runs).

    what: a short description for the error messages ("checkpoint", "classifier cache").
    Raises FileNotFoundError when the file is missing and UnreadableFile when torch cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a bad file: pickle, zip, EOF, runtime errors
        raise UnreadableFile(f"{path} is not a readable {what} (truncated, corrupt or written by another program): "
                             f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
