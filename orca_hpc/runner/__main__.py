"""`python -m orca_hpc.runner`: what every array task runs on the compute node."""

import sys

from orca_hpc.runner.run import main

sys.exit(main())
