"""Molecules in: geometries, SMILES and SDF files read into molecules with conformers.

The workflow side (`controller/`) sees only `read_molecules` and the records below; which formats
need the optional RDKit extra (`pip install 'orca-hpc[rdkit]'`) is this package's business, and
RDKit is imported only when such a file is read.

`read.py` (which reader a suffix gets, all problems in one error, unique names), `records.py` (the
records and the error), `xyzfile.py` (``.xyz``, pure Python), `chem.py` (SMILES and SDF with RDKit: conformer
generation), `superpose.py` (RMSD after the best rotation, pure Python), `text.py` (a file's text
or why it has none).
"""

from orca_hpc.molecules.read import (
    Conformer,
    ConformerSettings,
    MoleculeInput,
    MoleculeInputError,
    read_molecules,
)

__all__ = ["Conformer", "ConformerSettings", "MoleculeInput", "MoleculeInputError", "read_molecules"]
