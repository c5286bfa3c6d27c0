"""Example 1 (hpogrid 1.x's README, docs/HPOGRID1.md): a simple objective, training script style 1.

``f(config, reporter)``, reporting with ``reporter(loss=...)`` as in hpogrid 1.x / Ray 1.x;
hpogrid adapts it to Ray Tune 2.x. Search space: height uniform in [-100, 100], width uniform in
[0, 20]; minimise ``loss`` (optimum -17 at height=14, width=20).
"""


def calculate_loss(height, width):
    return (height - 14) ** 2 - abs(width - 3)


def simple_objective(config, reporter):
    loss = calculate_loss(config["height"], config["width"])
    reporter(loss=loss)
