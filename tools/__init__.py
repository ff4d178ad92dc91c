"""Course tooling: build the notebooks from course/ (build_notebooks.py), regenerate the release (release.py)."""
