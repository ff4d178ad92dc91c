"""Argument checks shared by the networks: bad input raises naming the argument and the valid range."""

from __future__ import annotations

from collections.abc import Sequence


def check_int(name: str, value: object, low: int = 1) -> int:
    """value must be an int >= low (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_choice(name: str, value: object, options: Sequence[str]) -> str:
    """value must be one of the option strings."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_int_tuple(name: str, value: object, low: int = 1, allow_empty: bool = False) -> tuple[int, ...]:
    """value must be a sequence of ints >= low (non-empty unless allow_empty)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a tuple of ints, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(check_int(f"{name}[{i}]", v, low) for i, v in enumerate(value))
