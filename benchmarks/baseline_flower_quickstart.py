"""Baseline: the Fed-Heart-Disease job written the way Flower's quickstarts do.

A ``NumPyClient`` that builds and compiles a Keras model on every message
(after ``keras.backend.clear_session()``), trains with ``model.fit`` on a
``tf.data`` pipeline and evaluates with ``model.evaluate``; a legacy FedAvg
``ServerApp``; ``run_simulation`` with the same worker resources hospfed
uses. Same data (hospfed's loader), same model (logistic regression, same
initial weights), same schedule (FLamby: 15 rounds of 100 SGD steps of
batch 4, learning rate 0.001). Prints the mean local test accuracy.

Run by ``bench_heart_sim.py``; not part of hospfed.
"""

from __future__ import annotations

import os
import sys

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

from hospfed.common.datasets.heart import HOSPITALS, load_hospital
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.simulations.heart import backend_config

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
SEED = 0
accuracies: dict[int, list[float]] = {}


def build_model() -> keras.Model:
    model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(1, "sigmoid")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.001),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


class FlowerClient(NumPyClient):
    def __init__(self, hospital: str) -> None:
        keras.backend.clear_session()
        self.data = load_hospital(hospital)
        self.model = build_model()

    def fit(self, parameters, config):
        self.model.set_weights(parameters)
        d = self.data
        ds = tf.data.Dataset.from_tensor_slices((d.x_train, d.y_train))
        ds = ds.shuffle(len(d.y_train)).repeat().batch(4)
        self.model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0)
        return self.model.get_weights(), len(d.y_train), {}

    def evaluate(self, parameters, config):
        self.model.set_weights(parameters)
        loss, accuracy = self.model.evaluate(
            self.data.x_test, self.data.y_test, verbose=0
        )
        return loss, len(self.data.y_test), {"accuracy": accuracy}


def client_fn(context: Context):
    hospital = HOSPITALS[int(context.node_config["partition-id"])]
    return FlowerClient(hospital).to_client()


def record(metrics):
    values = [m["accuracy"] for _, m in metrics]
    accuracies.setdefault(len(accuracies) + 1, values)
    return {"accuracy": float(np.mean(values))}


def server_fn(context: Context) -> ServerAppComponents:
    strategy = FedAvg(
        min_fit_clients=4,
        min_evaluate_clients=4,
        min_available_clients=4,
        initial_parameters=ndarrays_to_parameters(initial_weights(ModelSpec(13), SEED)),
        evaluate_metrics_aggregation_fn=record,
    )
    return ServerAppComponents(strategy=strategy, config=ServerConfig(ROUNDS))


if __name__ == "__main__":
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=len(HOSPITALS),
        backend_config=backend_config(len(HOSPITALS), verbose=False),
    )
    final = accuracies[max(accuracies)]
    print(f"baseline mean local accuracy {np.mean(final):.3f}")
