"""Training script style 4: a ``ray.tune.Trainable`` with Ray 2.x method names (``setup``, ``step``,
``save_checkpoint``, ``load_checkpoint``). One ``step`` = one training iteration.

Gradient descent on f(w) = (w - 3)^2 from w = 0 with learning rate ``lr`` (loguniform 1e-3..1);
minimise ``loss`` after the configured number of iterations.
"""

from ray import tune


class GradientDescent(tune.Trainable):
    def setup(self, config):
        self.lr = config["lr"]
        self.w = 0.0

    def step(self):
        self.w -= self.lr * 2 * (self.w - 3.0)
        return {"loss": (self.w - 3.0) ** 2, "w": self.w}

    def save_checkpoint(self, checkpoint_dir):
        return {"w": self.w}

    def load_checkpoint(self, checkpoint):
        self.w = checkpoint["w"]
