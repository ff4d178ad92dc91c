"""The package docstring lists the public API per unit: it must name exactly each listed module's __all__, every
listed name must exist, and every lecture module must be listed (so a newcomer's map cannot go stale)."""

import importlib
import re
from pathlib import Path

import ddpm_scratch

PACKAGE = Path(ddpm_scratch.__file__).parent
NOT_LISTED = {"checks", "__main__", "__init__"}  # the shared argument checks; the entry point


def listed() -> dict[str, list[str]]:
    """{module: names} parsed from the docstring's indented 'module   name, name, ...' blocks."""
    modules: dict[str, list[str]] = {}
    current = None
    for line in ddpm_scratch.__doc__.splitlines():
        head = re.match(r"^    ([a-z_.]+)\s{2,}(.*)$", line)
        if head:
            current = head.group(1)
            modules[current] = []
            rest = head.group(2)
        elif current and re.match(r"^\s{16,}\S", line):
            rest = line
        else:
            current = None
            continue
        modules[current] += [name.strip() for name in rest.split(",") if name.strip()]
    return modules


def test_the_docstring_lists_each_module_all_exactly():
    for module, names in listed().items():
        exported = importlib.import_module(f"ddpm_scratch.{module}").__all__
        assert sorted(names) == sorted(exported), (module, sorted(set(names) ^ set(exported)))


def test_every_lecture_module_is_listed():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - NOT_LISTED
    modules |= {f"applications.{p.stem}" for p in (PACKAGE / "applications").glob("*.py")} - {"applications.__init__"}
    assert modules <= set(listed()), sorted(modules - set(listed()))


def test_every_listed_name_exists():
    for module, names in listed().items():
        loaded = importlib.import_module(f"ddpm_scratch.{module}")
        missing = [name for name in names if not hasattr(loaded, name)]
        assert not missing, (module, missing)
