"""Projects: resolved, frozen copies of the configs and the scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpogrid.client import configs, projects
from hpogrid.client.errors import AlreadyExistsError, ConfigError, NotFoundError, UsageError

SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}}}


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    configs.create("model", "m", {"script": "train.py", "model": "objective"})
    configs.create("search_space", "s", SPACE)
    configs.create("hpo", "h", {"metric": "loss", "mode": "min"})
    configs.create("grid", "g", {})
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "train.py").write_text("def objective(config, reporter):\n    reporter(loss=1)\n")
    (scripts / "helper.py").write_text("X = 1\n")
    return scripts


def make(name: str = "p", scripts: Path | str = "", **kw) -> dict:
    parts = {"model_config": "m", "search_space": "s", "hpo_config": "h", "grid_config": "g", **kw}
    return projects.create(name, scripts_path=scripts, **parts)


def test_create_freezes_configs_and_copies_scripts(stored: Path) -> None:
    project = make(scripts=stored)
    folder = projects.path("p")
    assert json.loads((folder / "project.json").read_text()) == project
    assert project["hpo_config"]["metric"] == "loss" and project["search_space"] == SPACE
    assert (folder / "scripts" / "train.py").is_file() and (folder / "scripts" / "helper.py").is_file()
    configs.update("hpo", "h", {"metric": "accuracy"})  # later edits do not leak into the project
    assert projects.load("p")["hpo_config"]["metric"] == "loss"


def test_single_script_file(stored: Path) -> None:
    make(scripts=stored / "train.py")
    assert sorted(p.name for p in (projects.path("p") / "scripts").iterdir()) == ["train.py"]


def test_configs_by_path(stored: Path, tmp_path: Path) -> None:
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"w": {"method": "uniformint", "dimension": {"low": 1, "high": 3}}}))
    project = make(scripts=stored, search_space=str(space_file))
    assert set(project["search_space"]) == {"w"}


def test_update_recreate_remove_list(stored: Path) -> None:
    make(scripts=stored)
    configs.create("hpo", "h2", {"algorithm": "hyperopt"})
    assert projects.update("p", hpo_config="h2")["hpo_config"]["algorithm"] == "hyperopt"
    assert projects.load("p")["search_space"] == SPACE
    with pytest.raises(AlreadyExistsError):
        make(scripts=stored)
    projects.create("p", scripts_path=stored, model_config="m", search_space="s", hpo_config="h",
                    grid_config="g", replace=True)
    assert projects.load("p")["hpo_config"]["algorithm"] == "random"
    make("q", scripts=stored)
    assert projects.list_names() == ["p", "q"] and projects.list_names("q*") == ["q"]
    projects.remove("p")
    assert projects.list_names() == ["q"]


def test_bad_projects_leave_nothing(stored: Path, tmp_path: Path) -> None:
    cases = [
        (lambda: make(scripts=tmp_path / "missing"), NotFoundError),
        (lambda: make(scripts=stored, hpo_config="nope"), NotFoundError),
        (lambda: make(scripts=stored, model_config=str(tmp_path / "m.json")), NotFoundError),
        (lambda: make("a/b", scripts=stored), UsageError),
        (lambda: make("..", scripts=stored), UsageError),
        (lambda: make(scripts=stored / "helper.py"), ConfigError),  # train.py is not in the scripts path
    ]
    for action, error in cases:
        with pytest.raises(error):
            action()
    assert projects.list_names() == []
    leftovers = list(projects.path("p").parent.glob("*")) + list(projects.path("p").parent.glob(".*"))
    assert leftovers == []  # no half-built project, no staging folder
    for action in (lambda: projects.load("p"), lambda: projects.remove("p"), lambda: projects.update("p")):
        with pytest.raises(NotFoundError):
            action()
