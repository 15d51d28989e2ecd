"""`python -m orca_hpc.runner`: what every array task runs on the compute node."""

import signal
import sys

# SLURM may send the walltime warning up to 60 s early, even while this process starts: until the
# runner's own handler is in place it is ignored, not fatal (the runner then stops at the time limit's
# TERM, which it also handles).
signal.signal(signal.SIGUSR1, signal.SIG_IGN)

from orca_hpc.runner.run import main  # noqa: E402  (after the line above, on purpose)

sys.exit(main())
