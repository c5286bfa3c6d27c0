"""One example per command, shown at the end of its ``--help`` (click's epilog).

Kept in one table so every command has one and a test can check it; the examples use the names of
the README's Example 1 (``simple_objective``) so they paste in sequence.
"""

from __future__ import annotations

import click

__all__ = ["EXAMPLES", "add_examples"]

_SPACE = ('\'{"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}}, '
          '"width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}\'')

EXAMPLES: dict[str, str] = {
    "": "hpogrid --where",
    "hpo_config": "hpogrid hpo_config create tpe_min_loss --algorithm hyperopt --metric loss --mode min",
    "hpo_config create": "hpogrid hpo_config create tpe_min_loss --algorithm hyperopt --metric loss --mode min "
                         "--num_trials 100 --max_concurrent 2",
    "hpo_config recreate": "hpogrid hpo_config recreate tpe_min_loss --algorithm optuna --metric loss --mode min",
    "hpo_config update": "hpogrid hpo_config update tpe_min_loss --num_trials 200 --seed 7",
    "grid_config": "hpogrid grid_config create manc_standard --site ANALY_MANC_GPU_TEST",
    "grid_config create": "hpogrid grid_config create manc_standard --site ANALY_MANC_GPU_TEST",
    "grid_config recreate": "hpogrid grid_config recreate manc_standard --site ANALY_BNL_GPU_ARC --backend panda",
    "grid_config update": "hpogrid grid_config update manc_standard --inDS user.me:user.me.mydata",
    "model_config": "hpogrid model_config create simple_objective_model --script simple_objective.py "
                    "--model simple_objective",
    "model_config create": "hpogrid model_config create simple_objective_model --script simple_objective.py "
                           "--model simple_objective",
    "model_config recreate": "hpogrid model_config recreate simple_objective_model --script simple_objective.py "
                             "--model simple_objective --param '{\"epochs\": 5}'",
    "model_config update": "hpogrid model_config update simple_objective_model --param '{\"epochs\": 10}'",
    "search_space": f"hpogrid search_space create simple_objective_space {_SPACE}",
    "search_space create": f"hpogrid search_space create simple_objective_space {_SPACE}",
    "search_space recreate": "hpogrid search_space recreate simple_objective_space my_space.json",
    "search_space update": "hpogrid search_space update simple_objective_space "
                           "'{\"width\": {\"method\": \"uniform\", \"dimension\": {\"low\": 0, \"high\": 10}}}'",
    "project": "hpogrid project create simple_objective --scripts_path examples/scripts/simple_objective.py "
               "--model_config simple_objective_model --search_space simple_objective_space "
               "--hpo_config tpe_min_loss --grid_config manc_standard",
    "project create": "hpogrid project create simple_objective --scripts_path examples/scripts/simple_objective.py "
                      "--model_config simple_objective_model --search_space simple_objective_space "
                      "--hpo_config tpe_min_loss --grid_config manc_standard",
    "project recreate": "hpogrid project recreate simple_objective --scripts_path examples/scripts/ "
                        "--model_config simple_objective_model --search_space simple_objective_space "
                        "--hpo_config tpe_min_loss --grid_config manc_standard",
    "project update": "hpogrid project update simple_objective --hpo_config random_search_min_loss",
    "project where": "hpogrid project where simple_objective",
    "local_run": "hpogrid local_run simple_objective --cpus-per-trial 1",
    "submit_idds": "hpogrid submit_idds simple_objective --n_points_per_iteration 4",
    "tasks": "hpogrid tasks show --days 7",
    "tasks show": "hpogrid tasks show --days 7 --status finished,failed --output tasks.csv",
    "tasks kill": "hpogrid tasks kill 3",
    "tasks retry": "hpogrid tasks retry 3 --detach",
    "steering_exec": "hpogrid steering_exec simple_objective --local",
    "evaluation_exec": "hpogrid evaluation_exec simple_objective",
    "run": "hpogrid run simple_objective --n_jobs 3",
    "sites": "hpogrid sites -n 'ANALY_*GPU*'",
    "report": "hpogrid report simple_objective --to_html --to_csv -o results/simple_objective",
}
# the actions every config group shares
for _group, _name in (("hpo_config", "tpe_min_loss"), ("grid_config", "manc_standard"),
                      ("model_config", "simple_objective_model"), ("search_space", "simple_objective_space"),
                      ("project", "simple_objective")):
    EXAMPLES.setdefault(f"{_group} show", f"hpogrid {_group} show {_name}")
    EXAMPLES.setdefault(f"{_group} list", f"hpogrid {_group} list '{_name.split('_')[0]}*'")
    EXAMPLES.setdefault(f"{_group} remove", f"hpogrid {_group} remove {_name}")


def _epilog(example: str) -> str:
    # "\b" keeps click from re-wrapping the command, so it pastes as one line
    return f"Example:\n\n\b\n  {example}"


def add_examples(command: click.Command, path: str = "") -> None:
    """Give ``command`` and its subcommands their example (an epilog), unless they have one."""
    if command.epilog is None and path in EXAMPLES:
        command.epilog = _epilog(EXAMPLES[path])
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}".strip())
