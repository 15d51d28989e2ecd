"""`python -m orca_hpc.emulator` is `orca-emulator`."""

import sys

from orca_hpc.emulator.program import main

sys.exit(main())
