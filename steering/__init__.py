"""The steering: search spaces and search algorithms, behind one ask/tell contract.

It knows nothing of jobs, backends or Ray; the iDDS steering container installs only this part.
"""

from .errors import InputError, MissingDependencyError, SpaceError, SteeringError, UnknownAlgorithmError
from .space import METHODS, Dimension, SearchSpace, point_key

__all__ = [
    "METHODS",
    "Dimension",
    "SearchSpace",
    "point_key",
    "SteeringError",
    "SpaceError",
    "UnknownAlgorithmError",
    "MissingDependencyError",
    "InputError",
]
