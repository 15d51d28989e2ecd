"""One click command (or group) per module; `orca_hpc.cli` registers them."""
