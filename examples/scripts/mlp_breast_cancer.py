"""A realistic small model: a multi-layer perceptron (scikit-learn) on the breast-cancer data that ships
with scikit-learn (569 samples, 30 features, no download). Training script style 2: one
``ray.tune.report`` per epoch (``partial_fit``) with the validation accuracy; maximise ``accuracy``.
A trial takes about half a second; most of a fresh process's time is importing sklearn, which a
fork server's preload pays once per campaign (``bench/realistic.py``).

Search space (``bench/realistic.py``): hidden uniformint [8, 128], learning_rate_init loguniform
[1e-4, 1e-1], alpha loguniform [1e-6, 1e-2], batch_size categorical [16, 32, 64, 128].
model_config.param: epochs (default 15), seed (default 0).
"""

import warnings

import numpy as np
from ray import tune
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def load_data(seed=0):
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def train_mlp(config):
    seed = int(config.get("seed", 0))
    x_train, x_val, y_train, y_val = load_data(seed)
    model = MLPClassifier(
        hidden_layer_sizes=(int(config["hidden"]),),
        learning_rate_init=float(config["learning_rate_init"]),
        alpha=float(config["alpha"]),
        batch_size=int(config["batch_size"]),
        random_state=seed,
    )
    classes = np.unique(y_train)
    for epoch in range(int(config.get("epochs", 15))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        tune.report({"accuracy": float(model.score(x_val, y_val)), "train_loss": float(model.loss_), "epoch": epoch + 1})
