"""Baseline: many virtual hospitals written the way Flower's quickstarts do.

A ``NumPyClient`` that loads its partition and builds and compiles a Keras
model on every message (after ``keras.backend.clear_session()``), trains
with ``model.fit`` on a ``tf.data`` pipeline and evaluates with
``model.evaluate``; a legacy FedAvg ``ServerApp`` sampling a fraction of
the clients per round; ``run_simulation`` with the worker resources hospfed
uses. The partitions are ``.npz`` files written by
``bench_virtual_hospitals.py`` (the same rows hospfed's hospitals train on).

    python baseline_flower_virtual.py PARTS_DIR ROUNDS FRACTION LEARNING_RATE

Run by ``bench_virtual_hospitals.py``; not part of hospfed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import keras
import numpy as np
import tensorflow as tf
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation

from hospfed.common.model import ModelSpec, initial_weights
from hospfed.simulations.heart import backend_config

PARTS = Path(sys.argv[1])
ROUNDS = int(sys.argv[2])
FRACTION = float(sys.argv[3])
LEARNING_RATE = float(sys.argv[4])
FILES = sorted(PARTS.glob("part-*.npz"))
WIDTH = int(np.load(FILES[0])["x_train"].shape[1])
accuracies: dict[int, list[float]] = {}


def build_model() -> keras.Model:
    model = keras.Sequential([keras.Input((WIDTH,)), keras.layers.Dense(1, "sigmoid")])
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


class FlowerClient(NumPyClient):
    def __init__(self, partition: int) -> None:
        keras.backend.clear_session()
        with np.load(FILES[partition]) as arrays:
            self.data = {k: arrays[k] for k in arrays.files}
        self.model = build_model()

    def fit(self, parameters, config):
        self.model.set_weights(parameters)
        x, y = self.data["x_train"], self.data["y_train"]
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y)).repeat()
        self.model.fit(ds.batch(4), steps_per_epoch=100, epochs=1, verbose=0)
        return self.model.get_weights(), len(y), {}

    def evaluate(self, parameters, config):
        self.model.set_weights(parameters)
        loss, accuracy = self.model.evaluate(
            self.data["x_test"], self.data["y_test"], verbose=0
        )
        return loss, len(self.data["y_test"]), {"accuracy": accuracy}


def client_fn(context: Context):
    return FlowerClient(int(context.node_config["partition-id"])).to_client()


def record(metrics):
    values = [m["accuracy"] for _, m in metrics]
    accuracies.setdefault(len(accuracies) + 1, values)
    return {"accuracy": float(np.mean(values))}


def server_fn(context: Context) -> ServerAppComponents:
    sampled = max(1, int(len(FILES) * FRACTION))
    strategy = FedAvg(
        fraction_fit=FRACTION,
        fraction_evaluate=FRACTION,
        min_fit_clients=sampled,
        min_evaluate_clients=sampled,
        min_available_clients=len(FILES),
        initial_parameters=ndarrays_to_parameters(initial_weights(ModelSpec(WIDTH), 0)),
        evaluate_metrics_aggregation_fn=record,
    )
    return ServerAppComponents(strategy=strategy, config=ServerConfig(ROUNDS))


if __name__ == "__main__":
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=len(FILES),
        backend_config=backend_config(len(FILES), verbose=False),
    )
    final = accuracies[max(accuracies)]
    print(f"baseline mean local accuracy {np.mean(final):.3f}")
