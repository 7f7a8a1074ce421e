"""The PyTorch training backend, with DP-SGD by Opacus.

Importing this module imports torch (about 2 s); ``get_backend`` does so only
when a hospital asks for the PyTorch backend. The network is built once from
the :class:`~hospfed.common.model.ModelSpec`; weights cross the wire in the
canonical (Keras) layout, so each dense kernel is transposed on the way in
and out. Non-private rounds visit the same mini-batches as the Keras backend
(``batch_indices``). Private rounds use one Opacus ``PrivacyEngine`` for the
life of the backend (Poisson sampling, per-example clipping, Gaussian
noise); its accountant is restored from the hospital's ledger, so it never
silently restarts.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.grad_sample import GradSampleHooks
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hospfed.client.privacy import DpMechanism, DpStep
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec, Weights
from hospfed.common.training import TrainPlan, batch_indices

logger = logging.getLogger(__name__)

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def build_torch_model(spec: ModelSpec) -> nn.Sequential:
    """Build the network of ``spec`` (logits or a value out), in float32."""
    layers: list[nn.Module] = []
    sizes = spec.layer_sizes
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(_ACTIVATIONS[spec.activation]())
    return nn.Sequential(*layers)


def _linear_layers(net: nn.Sequential) -> list[nn.Linear]:
    return [m for m in net if isinstance(m, nn.Linear)]


def _make_optimizer(
    name: str, params: Sequence[nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}")


class TorchBackend:
    """A warm PyTorch model, trained plainly or with Opacus DP-SGD.

    Parameters
    ----------
    spec : ModelSpec
        The model to build.

    """

    def __init__(self, spec: ModelSpec) -> None:
        torch.set_num_threads(1)
        self.spec = spec
        self.net = build_torch_model(spec)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._private: _OpacusTrainer | None = None

    def get_weights(self) -> Weights:
        """Return the weights in the canonical layout (kernels ``(in, out)``)."""
        weights: Weights = []
        for layer in _linear_layers(self.net):
            weights.append(layer.weight.detach().numpy().T.astype(np.float32))
            weights.append(layer.bias.detach().numpy().astype(np.float32))
        return weights

    def set_weights(self, weights: Weights) -> None:
        """Load canonical-layout weights; raises if the shapes do not fit."""
        self.spec.check_weights(weights)
        with torch.no_grad():
            for index, layer in enumerate(_linear_layers(self.net)):
                kernel = np.asarray(weights[2 * index], dtype=np.float32)
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                bias = np.asarray(weights[2 * index + 1], dtype=np.float32)
                layer.bias.copy_(torch.from_numpy(bias))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of 1, class probabilities, or values per row."""
        with torch.no_grad():
            outputs = self.net(torch.as_tensor(x, dtype=torch.float32))
            if self.spec.output == "multiclass":
                predicted = torch.softmax(outputs, dim=1)
            elif self.spec.output == "continuous":
                predicted = outputs[:, 0]
            else:
                predicted = torch.sigmoid(outputs[:, 0])
            return np.asarray(predicted.numpy())

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        plan: TrainPlan,
        privacy: DpStep | None = None,
    ) -> float:
        """Run one round; with ``privacy``, DP-SGD through Opacus.

        Returns
        -------
        float
            Mean training loss over the round's batches.

        """
        if privacy is not None:
            trainer = self._private_trainer(x, y, plan, privacy)
            return trainer.train_round(plan, privacy)
        if self._private is not None:  # back to plain SGD: drop Opacus's hooks
            self._private.close()
            self._private = None
        return self._train_plain(x, y, plan)

    def clipped_gradient_sum(
        self, x: np.ndarray, y: np.ndarray, *, clip_norm: float
    ) -> Weights:
        """Return Opacus's sum of per-example clipped gradients (canonical layout).

        For testing the Keras DP-SGD against Opacus; the weights are unchanged.
        """
        net = build_torch_model(self.spec)
        net.load_state_dict(self.net.state_dict())
        optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
        loader = DataLoader(TensorDataset(*_tensors(x, y)), batch_size=len(x))
        _, dp_optimizer, _ = PrivacyEngine(accountant="rdp").make_private(
            module=net,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=0.0,
            max_grad_norm=clip_norm,
            poisson_sampling=False,
            wrap_model=False,
        )
        xb, yb = _tensors(x, y)
        label_loss(self.spec, net(xb), yb).backward()
        dp_optimizer.clip_and_accumulate()
        sums: Weights = []
        for layer in _linear_layers(net):
            sums.append(_summed(layer.weight).numpy().T.astype(np.float32))
            sums.append(_summed(layer.bias).numpy().astype(np.float32))
        return sums

    def _train_plain(self, x: np.ndarray, y: np.ndarray, plan: TrainPlan) -> float:
        optimizer = self._optimizers.get(plan.optimizer)
        if optimizer is None or plan.reset_optimizer:
            optimizer = _make_optimizer(
                plan.optimizer, list(self.net.parameters()), plan.learning_rate
            )
            self._optimizers[plan.optimizer] = optimizer
        for group in optimizer.param_groups:
            group["lr"] = plan.learning_rate
        anchors = [p.detach().clone() for p in self.net.parameters()]
        xt, yt = _tensors(x, y)
        total = 0.0
        for rows in batch_indices(len(x), plan):
            index = torch.from_numpy(rows.astype(np.int64))
            optimizer.zero_grad()
            loss = label_loss(self.spec, self.net(xt[index]), yt[index])
            objective = loss + 0.5 * plan.proximal_mu * _proximal(self.net, anchors)
            objective.backward()
            optimizer.step()
            total += float(loss.detach())
        return total / plan.local_steps

    def _private_trainer(
        self, x: np.ndarray, y: np.ndarray, plan: TrainPlan, privacy: DpStep
    ) -> _OpacusTrainer:
        setup = _PrivateSetup.of(x, y, plan, privacy)
        if self._private is None or self._private.setup != setup:
            if self._private is not None:
                self._private.close()
            self._private = _OpacusTrainer(
                self.spec, self.net, x, y, plan, privacy, setup
            )
        return self._private

    def restore_accountant(self, history: Sequence[DpMechanism]) -> None:
        """Give the live Opacus accountant the ledger's history (after a restart)."""
        if self._private is not None:
            self._private.restore(history)

    def opacus_epsilon(self, delta: float) -> float:
        """Epsilon by the live Opacus engine's own accountant (0 before DP)."""
        if self._private is None:
            return 0.0
        return float(self._private.engine.accountant.get_epsilon(delta))


@dataclass(frozen=True)
class _PrivateSetup:
    """What the Opacus engine was built for; a change rebuilds it."""

    data_id: int
    num_examples: int
    batch_size: int
    optimizer: str
    noise_multiplier: float
    clip_norm: float

    @classmethod
    def of(
        cls, x: np.ndarray, y: np.ndarray, plan: TrainPlan, privacy: DpStep
    ) -> _PrivateSetup:
        return cls(
            data_id=id(x),
            num_examples=len(y),
            batch_size=plan.batch_size,
            optimizer=plan.optimizer,
            noise_multiplier=privacy.noise_multiplier,
            clip_norm=privacy.clip_norm,
        )


class _OpacusTrainer:
    """An Opacus PrivacyEngine bound to one hospital's training set."""

    def __init__(
        self,
        spec: ModelSpec,
        net: nn.Sequential,
        x: np.ndarray,
        y: np.ndarray,
        plan: TrainPlan,
        privacy: DpStep,
        setup: _PrivateSetup,
    ) -> None:
        self.setup = setup
        self.spec = spec
        self.net = net
        for parameter in net.parameters():  # left over from plain training
            parameter.grad_sample = None  # type: ignore[attr-defined]
            parameter.grad = None
        self.generator = torch.Generator()
        with warnings.catch_warnings():
            # Opacus warns that secure_mode is off on every engine; we say it
            # once, with the reason, in _warn_rng.
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG turned off.*")
            self.engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        loader = DataLoader(TensorDataset(*_tensors(x, y)), batch_size=plan.batch_size)
        base = _make_optimizer(plan.optimizer, list(net.parameters()), 1.0)
        hooks, optimizer, dp_loader = self.engine.make_private(
            module=net,
            optimizer=base,
            data_loader=loader,
            noise_multiplier=privacy.noise_multiplier,
            max_grad_norm=privacy.clip_norm,
            poisson_sampling=True,
            noise_generator=self.generator,
            wrap_model=False,
        )
        assert isinstance(hooks, GradSampleHooks)
        assert isinstance(optimizer, DPOptimizer)
        self.hooks = hooks
        self.optimizer = optimizer
        self.loader = dp_loader
        self.loader.batch_sampler.generator = self.generator  # type: ignore[union-attr]
        _warn_rng()

    def restore(self, history: Sequence[DpMechanism]) -> None:
        self.engine.accountant.history = [
            (m.noise_multiplier, m.sample_rate, m.steps) for m in history
        ]

    def close(self) -> None:
        self.hooks.cleanup()

    def train_round(self, plan: TrainPlan, privacy: DpStep) -> float:
        self.generator.manual_seed(privacy.entropy())
        for group in self.optimizer.param_groups:
            group["lr"] = plan.learning_rate
        if plan.reset_optimizer:
            self.optimizer.original_optimizer.state.clear()
        anchors = [p.detach().clone() for p in self.net.parameters()]
        total = 0.0
        for _, (xb, yb) in zip(range(plan.local_steps), self._batches(), strict=False):
            self.optimizer.zero_grad()
            loss = label_loss(self.spec, self.net(xb), yb)
            loss.backward()
            if self.optimizer.pre_step():
                _add_proximal(self.net, anchors, plan.proximal_mu)
                self.optimizer.original_optimizer.step()
            total += float(loss.detach()) if len(yb) else 0.0
        return total / plan.local_steps

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self.loader


_RNG_WARNED = False


def _warn_rng() -> None:
    global _RNG_WARNED  # noqa: PLW0603 - warn once per process
    if not _RNG_WARNED:
        _RNG_WARNED = True
        logger.warning(
            "Opacus secure_mode needs torchcsprng, which has no build for torch "
            "2.13: DP noise and Poisson sampling use torch's generator, reseeded "
            "every round from the OS CSPRNG"
        )


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(np.asarray(x, dtype=np.float32)),
        torch.as_tensor(np.asarray(y, dtype=np.float32)),
    )


def label_loss(spec: ModelSpec, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean loss for the label's kind (as the Keras backend's, per example).

    Binary cross-entropy on one logit, cross-entropy on ``num_classes``
    logits (``y`` holds class indices), or squared error of one value.
    """
    if spec.output == "multiclass":
        return nn.functional.cross_entropy(outputs, y.long())
    if spec.output == "continuous":
        return nn.functional.mse_loss(outputs[:, 0], y)
    return nn.functional.binary_cross_entropy_with_logits(outputs[:, 0], y)


def _proximal(net: nn.Module, anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(
        (
            torch.sum((p - a) ** 2)
            for p, a in zip(net.parameters(), anchors, strict=True)
        ),
        torch.tensor(0.0),
    )


def _add_proximal(net: nn.Module, anchors: Sequence[torch.Tensor], mu: float) -> None:
    # The proximal term does not touch the data, so it joins after clipping
    # and noise and costs no privacy.
    if mu == 0:
        return
    with torch.no_grad():
        for p, a in zip(net.parameters(), anchors, strict=True):
            assert p.grad is not None
            p.grad.add_(p - a, alpha=mu)


def _summed(parameter: torch.Tensor) -> torch.Tensor:
    summed = getattr(parameter, "summed_grad", None)
    if not isinstance(summed, torch.Tensor):
        raise RuntimeError("Opacus did not accumulate a clipped gradient")
    return summed.detach()
