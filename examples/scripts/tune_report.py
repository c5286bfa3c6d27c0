"""Training script style 2: ``f(config)`` reporting with Ray Tune 2.x's ``ray.tune.report`` once
per iteration, and resuming from ``ray.tune.get_checkpoint()`` when there is one.

A noisy quadratic bowl that improves with each iteration: minimise ``loss``.
Search space: x uniform in [-5, 5], y uniform in [-5, 5].
"""

import json
import os
import tempfile

from ray import tune


def quadratic(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.json")) as fh:
                start = json.load(fh)["iteration"]
    epochs = int(config.get("epochs", 10))
    for it in range(start, epochs):
        loss = (config["x"] - 1) ** 2 + (config["y"] + 2) ** 2 + 1.0 / (it + 1)
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as fh:
                json.dump({"iteration": it + 1}, fh)
            tune.report({"loss": loss, "epoch": it + 1}, checkpoint=tune.Checkpoint.from_directory(folder))
