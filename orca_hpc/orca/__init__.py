"""What orca-hpc knows about ORCA: inputs, xyz files, method presets and how an output ended.

``inputs`` parses, validates and edits ORCA inputs (every form ORCA accepts); ``xyz`` reads geometries;
``classify`` reads an output's head and tail and says how the run ended (``outcomes`` is its
vocabulary). Pure functions over text and files: no ledger, no scheduler.
"""
