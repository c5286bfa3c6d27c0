"""Training script style 2 with ``ray.train.report`` (the Ray 2.0-2.6 way many scripts still use):
``f(config)`` reporting once, at the end. Maximise ``accuracy`` (mode max).

Search space: x uniform in [0, 1].
"""

import ray.train


def accuracy_of_x(config):
    accuracy = 1.0 - (config["x"] - 0.7) ** 2
    ray.train.report({"accuracy": accuracy})
