"""Property tests for interatomic potentials — the project's own and users' MLIPs.

* :mod:`genanalysis.testing.properties` — checks on any ASE calculator (forces = −∇E,
  virial = strain derivative, Hessian symmetry and acoustic sum rule, invariance under
  rotation, reflection, translation and permutation, extensivity, smoothness across the
  cutoff), each returning a :class:`~genanalysis.testing.properties.PropertyReport` that
  names the property and the size of its violation;
* :mod:`genanalysis.testing.strategies` — hypothesis strategies (lattices, supercells,
  point defects, strains, rattles, configurations, training specs; needs ``hypothesis``);
* :mod:`genanalysis.testing.plugin` — the pytest plugin: ``pytest --pyargs
  genanalysis.testing --genanalysis-calculator python:MODULE:CALLABLE`` runs the property
  tests against a user's calculator (docs/testing.md).
"""

from genanalysis.testing.properties import PROPERTIES, PropertyReport, check_calculator

__all__ = ["PROPERTIES", "PropertyReport", "check_calculator"]
