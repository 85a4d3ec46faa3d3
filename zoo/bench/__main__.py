"""``python -m zoo.bench JOB``: the child process of one suite entry (see :func:`zoo.bench.measure.child_main`)."""

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():  # -m without PYTHONSAFEPATH (3.10)
    del sys.path[0]

from zoo.bench.measure import child_main  # noqa: E402

child_main(sys.argv[1:])
