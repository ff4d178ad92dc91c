"""nbgrader's settings for `make validate` (and JupyterLab's Validate button) in the student edition.

nbgrader reads this file from the folder it runs in. It holds only how a notebook is run when it is checked; the
course's grading uses the same values, so a notebook that validates here runs the same way when it is graded.
"""

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)

# Seconds a cell may run before nbgrader interrupts it: a guard against a cell that never returns, not a speed
# limit (the slowest cell of a correct answer takes a few seconds).
c.Execute.timeout = 300
# Seconds to wait for a cell's last output after it has finished, and for the kernel to start: guards only.
c.Execute.iopub_timeout = 60
c.Execute.startup_timeout = 300
