"""Example 2 (hpogrid 1.x's README, docs/HPOGRID1.md): a trainable class with the hpogrid 1.x / Ray 1.x method names
(``_setup``, ``_train``, ``_save``, ``_restore``), training script style 5; hpogrid maps them to
Ray Tune 2.x's ``setup``, ``step``, ``save_checkpoint``, ``load_checkpoint``.

loss = tanh(timestep / alpha) * beta; alpha uniform in [-10, 10], beta one of [-1, 0, 1, 2, 3, 4, 5].
The loss approaches -5 (beta=5, small negative alpha) as the steps go on.
"""

import json
import os

import numpy as np
from ray import tune


class MyTrainableClass(tune.Trainable):
    def _setup(self, config):
        self.timestep = 0

    def _train(self):
        self.timestep += 1
        alpha = self.config.get("alpha", 1)
        beta = self.config.get("beta", 1)
        loss = self.calculate_loss(alpha, beta)
        return {"loss": loss, "timestep": self.timestep}

    def _save(self, checkpoint_dir):
        path = os.path.join(checkpoint_dir, "checkpoint")
        with open(path, "w") as f:
            f.write(json.dumps({"timestep": self.timestep}))
        return path

    def _restore(self, checkpoint_path):
        with open(checkpoint_path) as f:
            self.timestep = json.loads(f.read())["timestep"]

    def calculate_loss(self, alpha, beta):
        loss = np.tanh(float(self.timestep) / alpha)
        loss *= beta
        return float(loss)
