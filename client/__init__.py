"""The client: configs, projects, campaigns and their backends, the store, the reports, the CLI.

The CLI (``hpogrid``) is a thin layer over these modules; everything it does can be done from
Python::

    from hpogrid.client import configs, projects
    configs.create("hpo", "tpe_min_loss", {"algorithm": "hyperopt", "metric": "loss", "mode": "min"})
    projects.create("demo", scripts_path="train.py", model_config="m", search_space="s",
                    hpo_config="tpe_min_loss", grid_config="g")
"""

from . import campaigns, configs, projects
from .errors import AlreadyExistsError, CampaignError, ConfigError, GridError, HpogridError, NotFoundError, UsageError

__all__ = [
    "campaigns",
    "configs",
    "projects",
    "HpogridError",
    "UsageError",
    "ConfigError",
    "NotFoundError",
    "AlreadyExistsError",
    "CampaignError",
    "GridError",
]
