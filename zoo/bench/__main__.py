"""``python -m zoo.bench JOB``: the child process of one suite entry (see :func:`zoo.bench.measure.child_main`)."""

import sys

from zoo.bench.measure import child_main

child_main(sys.argv[1:])
