"""The ORCA emulator (``orca-emulator``): stands in for the licensed ORCA in tests and the demo.

It reads an ORCA input and writes ORCA-style output and files, and fails in each real way on request
(``# emulate: ...`` directives, see ``docs/emulator.md``). It is written from ORCA's own texts, not from
the classifier: nothing here imports ``orca_hpc.orca``, so the emulator cannot share the classifier's
assumptions.
"""
