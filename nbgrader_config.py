"""nbgrader configuration of the course: nbgrader's folders mapped onto this repository.

nbgrader reads this file from the current folder, so run every nbgrader command from the repository root, with
the venv's bin first on PATH (nbgrader starts `alembic` and the grading kernel from it):

    PATH="$PWD/.venv/bin:$PATH" nbgrader generate_assignment ps1_diffusion_kernel --force

    solutions/<ps>/<ps>.ipynb              source notebooks (built from course/problem_sets/, see docs/instructors.md)
    assignments/<ps>/<ps>.ipynb            student release (committed)
    grading/submitted/<student>/<ps>/      submissions             \
    grading/autograded/<student>/<ps>/     autograded copies        |  grading/ is git-ignored:
    grading/feedback/<student>/<ps>/       feedback (html)          |  the instructor's workspace
    grading/gradebook.db                   gradebook (sqlite)      /

The root is the folder of this file, so a copy of the course (as the tests make) is a workspace of its own.
"""

import os

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)

ROOT = os.path.dirname(os.path.abspath(__file__))
GRADING = os.path.join(ROOT, "grading")
os.makedirs(GRADING, exist_ok=True)  # sqlite creates the database file, not its folder

c.CourseDirectory.course_id = "ddpm_scratch"
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = os.path.join("grading", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("grading", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("grading", "feedback")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(GRADING, "gradebook.db")

# `nbgrader zip_collect <ps>`: submissions downloaded from an LMS go to grading/downloaded/<ps>/archive/, one
# folder or zip file per student named by the student id (alice/<ps>.ipynb or alice.zip); they are extracted to
# grading/downloaded/<ps>/extracted/<student>/ and collected into grading/submitted/<student>/<ps>/.
c.ZipCollectApp.downloaded_directory = os.path.join("grading", "downloaded")
c.FileNameCollectorPlugin.named_regexp = (
    r".*[/\\]extracted[/\\](?P<student_id>[^/\\]+)[/\\](?:.*[/\\])?(?P<file_id>[^/\\]+\.ipynb)$"
)

# Seconds per cell when nbgrader executes a notebook (autograde, validate): a guard against a cell that never
# returns, not a speed limit. A cell that runs longer (an infinite loop) is interrupted, the tests that need it
# score 0, and the rest of the notebook still runs. The slowest cell of a reference solution took 2-4 s on two
# cores under a load of 6 and up to 6.5 s under a load of 9 (`python -m benchmarks.course_times`); 5 minutes is
# 45x that, enough for a correct answer several times slower than the reference on such a machine, and costs a
# looping submission 5 minutes per looping cell. The course tests grade with this value
# (tests/course/test_pipeline.py), the looping submission included.
c.Execute.timeout = 300
# After each cell's reply nbgrader waits at most this long for the cell's last output messages, and gives up on
# that student's notebook past it ("There was an error processing assignment"). nbclient's 4 s can pass after a
# timeout, while a loaded machine interrupts a kernel busy in torch; a minute cannot. The wait ends as soon as the
# messages arrive, so a wide value costs nothing.
c.Execute.iopub_timeout = 60
# Seconds for a grading kernel to start: 2-5 s here; a guard only.
c.Execute.startup_timeout = 300
