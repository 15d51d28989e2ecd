"""Molecules in: geometries, SMILES and SDF files read into molecules with conformers.

The workflow side (`controller/`) sees only `read_molecules` and the records below; which formats
need the optional RDKit extra (`pip install 'orca-hpc[rdkit]'`) is this package's business.
"""

from orca_hpc.molecules.read import Conformer, ConformerSettings, MoleculeInput, read_molecules

__all__ = ["Conformer", "ConformerSettings", "MoleculeInput", "read_molecules"]
