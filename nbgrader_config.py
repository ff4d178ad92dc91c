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

# Seconds per cell when nbgrader executes a notebook (autograde, validate). A cell that runs longer (an infinite
# loop) is interrupted and its tests score 0; the rest of the notebook still runs.
c.Execute.timeout = 60
# Kill the kernel when a notebook is done instead of asking it to exit and waiting (about 2 s per submission).
c.Execute.shutdown_kernel = "immediate"
