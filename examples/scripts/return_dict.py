"""Training script style 3: ``f(config)`` returning a dict of metrics (no Ray import needed).

Branin function on x1 in [-5, 10], x2 in [0, 15]; minimise ``loss`` (global minimum 0.397887).
"""

import math


def branin(config):
    x1, x2 = config["x1"], config["x2"]
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    loss = a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s
    return {"loss": loss}
