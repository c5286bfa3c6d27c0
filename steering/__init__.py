"""The steering: search spaces and search algorithms, behind one ask/tell contract.

It knows nothing of jobs, backends or Ray; the iDDS steering container installs only this part.
Search libraries are imported when an algorithm that needs them is created, not here.
"""

from .algorithms import ALGORITHMS, FAILED, FAILURE_LOSS, BaseAlgorithm, create_algorithm, metric_to_loss
from .api import Searcher, propose
from .errors import InputError, MissingDependencyError, SpaceError, SteeringError, UnknownAlgorithmError
from .space import METHODS, Dimension, SearchSpace, point_key

__all__ = [
    "ALGORITHMS",
    "BaseAlgorithm",
    "FAILED",
    "FAILURE_LOSS",
    "METHODS",
    "Dimension",
    "SearchSpace",
    "Searcher",
    "create_algorithm",
    "metric_to_loss",
    "point_key",
    "propose",
    "SteeringError",
    "SpaceError",
    "UnknownAlgorithmError",
    "MissingDependencyError",
    "InputError",
]
