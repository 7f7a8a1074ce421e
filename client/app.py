"""The Flower ClientApp each hospital runs.

A :class:`HospitalClient` trains the global model on the hospital's own
training set and evaluates it on its own test set. Its backend (the model)
is built once per process and kept warm; its data is loaded once per
process. Every reply passes :mod:`hospfed.client.outgoing` (the model's
arrays and whitelisted metrics only, recorded in the hospital's audit log).
Deployed by ``hospfed-client start``, the ClientApp hands training and
evaluation to the hospital's warm worker (:mod:`hospfed.client.worker`,
node config ``worker-socket``) and keeps the mods.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import NDArrays, Scalar, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
)
from flwr.compat.common import recorddict_compat as compat

from hospfed.client.backends import TrainingBackend, evaluate, get_backend
from hospfed.client.central_dp import central_clipping
from hospfed.client.data import HospitalDataset, NodeSettings, load_hospital_data
from hospfed.client.outgoing import make_outgoing_policy
from hospfed.client.privacy import HospitalPrivacy, PrivateRound, ledger_mac_key
from hospfed.client.worker import WORKER_SOCKET_KEY, WorkerClient
from hospfed.common.errors import (
    ConfigError,
    DataError,
    KeyFileError,
    PrivacyBudgetError,
    SchemaError,
)
from hospfed.common.metrics import Evaluation
from hospfed.common.personal import PERSONAL_PREFIX, PersonalPlan, decode_evaluation
from hospfed.common.protocol import (
    Key,
    decode_plan,
    decode_round,
    decode_scaling,
    decode_schema,
    decode_spec,
    decode_task,
)
from hospfed.common.training import HospitalData, TrainPlan

MIN_SUMS_ROWS = 11
"""Fewest training rows a hospital sends input sums over (prepare's minimum)."""


def hospital_seed(run_seed: int, server_round: int, hospital: str) -> int:
    """Seed one hospital's batch order in one round.

    Parameters
    ----------
    run_seed : int
        The run's seed, chosen by the coordinator.
    server_round : int
        The round.
    hospital : str
        The hospital's name.

    Returns
    -------
    int
        A seed distinct for every (run seed, round, hospital).

    """
    entropy = [run_seed, server_round, zlib.crc32(hospital.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class HospitalClient(NumPyClient):
    """One hospital: local training and evaluation on its own data.

    Parameters
    ----------
    dataset : HospitalDataset
        The hospital's prepared rows and the schema they were prepared
        under; each round's task builds the model inputs from them.
    settings : NodeSettings
        Backend and privacy settings of this hospital.
    run : str
        Identifier of the federation run (recorded in the privacy ledger).

    Notes
    -----
    With DP on, the training loss is not reported: it is a statistic of
    the training records that DP-SGD does not cover.

    """

    def __init__(
        self, dataset: HospitalDataset, settings: NodeSettings, run: str
    ) -> None:
        self.dataset = dataset
        self.settings = settings
        self.backend_name = settings.backend
        self.run = run
        self._privacy: HospitalPrivacy | None = None

    def _inputs(self, config: Mapping[str, Scalar]) -> HospitalData:
        """The round's schema checked, then the inputs its task builds here."""
        self.dataset.schema.check_matches(decode_schema(config))
        task = decode_task(config)
        try:
            return self.dataset.inputs(task, decode_scaling(config))
        except (
            ConfigError,
            DataError,
            SchemaError,
        ) as exc:  # named for the coordinator
            raise type(exc)(f"{self.dataset.hospital}: {exc}") from exc

    def get_properties(self, config: dict[str, Scalar]) -> dict[str, Scalar]:
        """Answer the coordinator's sums query (federation-wide standardisation).

        Only sums over the training inputs the run's task builds, and their
        count, leave (as :data:`~hospfed.common.protocol.Key.INPUT_SUMS`).

        Raises
        ------
        ConfigError
            If this hospital trains with DP: exact sums of its training
            inputs are not covered by DP-SGD, so it does not send them.

        """
        hospital = self.dataset.hospital
        if self.settings.privacy is not None:
            raise ConfigError(
                f"{hospital}: trains with DP-SGD, and the exact sums of its "
                "training inputs that federation-wide standardisation needs are "
                "not covered by DP; use a task that standardises by hospital"
            )
        if not self.settings.input_sums:
            raise ConfigError(
                f"{hospital}: does not send sums of its training inputs (they are "
                "exact statistics of its patients); its node config opts in with "
                'input-sums = "allow" (hospfed-client start --allow-input-sums)'
            )
        if self.run in self.dataset.sums_sent:
            raise ConfigError(
                f"{hospital}: has sent its input sums for run {self.run} already; "
                "a second query could be differenced against the first"
            )
        self.dataset.schema.check_matches(decode_schema(config))
        task = decode_task(config)
        try:
            sums = self.dataset.input_sums(task)
        except (ConfigError, DataError, SchemaError) as exc:
            raise type(exc)(f"{hospital}: {exc}") from exc
        if sums.count < MIN_SUMS_ROWS:
            raise ConfigError(
                f"{hospital}: sums over {sums.count} training rows would come "
                f"close to revealing rows; it sends sums over {MIN_SUMS_ROWS} or more"
            )
        self.dataset.sums_sent.add(self.run)
        return {Key.HOSPITAL: hospital, Key.INPUT_SUMS: sums.to_json()}

    def _privacy_for(self) -> HospitalPrivacy | None:
        """The DP ledger of this hospital's prepared rows (None: no DP here).

        The ledger is bound to the prepared rows' fingerprint, not to the
        inputs a task builds from them: every task, split and scaling trained
        on the same patients spends the one budget.
        """
        settings = self.settings
        if settings.privacy is None or settings.state_dir is None:
            return None
        if self._privacy is None:
            self._privacy = HospitalPrivacy(
                settings=settings.privacy,
                state_dir=settings.state_dir,
                dataset=self.dataset.fingerprint(),
                mac_key=ledger_mac_key(settings.key()),
                receipt_dir=settings.data.parent,
            )
        return self._privacy

    def _authorise(
        self,
        privacy: HospitalPrivacy,
        plan: TrainPlan,
        data: HospitalData,
        server_round: int,
        *,
        noise_steps: int | None = None,
    ) -> PrivateRound:
        """Reserve a DP-SGD step's spending, or decline naming this hospital.

        ``noise_steps``: personal training runs with the noise of the run's
        rounds (of that many steps), whatever its own steps.
        """
        what = "" if noise_steps is None else "personalisation: "
        try:
            return privacy.authorise(
                plan,
                num_examples=len(data.y_train),
                run=self.run,
                server_round=server_round,
                noise_steps=noise_steps,
            )
        except PrivacyBudgetError as exc:  # the coordinator names who declined
            raise PrivacyBudgetError(f"{data.hospital}: {what}{exc}") from exc

    def _backend(
        self, config: Mapping[str, Scalar], parameters: NDArrays, data: HospitalData
    ) -> TrainingBackend:
        spec = decode_spec(config)
        if spec.input_dim != data.num_features:
            raise ConfigError(
                f"{data.hospital}: the run's model takes {spec.input_dim} "
                f"inputs but this hospital's data has {data.num_features}"
            )
        backend = get_backend(self.backend_name, spec)
        backend.set_weights(list(parameters))
        return backend

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train the global model locally for one round."""
        data = self._inputs(config)
        backend = self._backend(config, parameters, data)
        server_round, run_seed = decode_round(config)
        seed = hospital_seed(run_seed, server_round, data.hospital)
        plan = decode_plan(config, seed=seed)
        metrics: dict[str, Scalar] = {Key.HOSPITAL: data.hospital}
        privacy = self._privacy_for()
        if privacy is None:
            loss = backend.train(data.x_train, data.y_train, plan)
            metrics[Key.TRAIN_LOSS] = loss
        else:
            authorised = self._authorise(privacy, plan, data, server_round)
            backend.train(data.x_train, data.y_train, plan, authorised.step)
            metrics[Key.EPSILON] = authorised.epsilon_after
            metrics[Key.NOISE_MULTIPLIER] = authorised.step.noise_multiplier
        return backend.get_weights(), len(data.y_train), metrics

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Score the global model on this hospital's test or validation set.

        The instructions name the set (a validation run never reads the test
        rows). When they ask for personalisation (a run's final round), the
        hospital also adapts a copy of the global model on its training rows
        and scores that copy on the same set; its weights stay here.
        """
        data = self._inputs(config)
        split, personal = decode_evaluation(config)
        x, y = data.scored_on(split)
        backend = self._backend(config, parameters, data)
        kind = backend.spec.output
        result = evaluate(backend, x, y)
        metrics: dict[str, Scalar] = {Key.HOSPITAL: data.hospital}
        metrics |= _scores(kind, result)
        if personal is not None:
            weights, spent = self._personalise(config, parameters, data, personal)
            backend.set_weights(weights)
            adapted = evaluate(backend, x, y)
            scores = _scores(kind, adapted) | {Key.LOSS: adapted.loss}
            metrics |= {PERSONAL_PREFIX + k: v for k, v in scores.items()}
            if spent is not None:
                metrics[Key.EPSILON] = spent
        return result.loss, result.num_examples, metrics

    def _personalise(
        self,
        config: Mapping[str, Scalar],
        parameters: NDArrays,
        data: HospitalData,
        personal: PersonalPlan,
    ) -> tuple[NDArrays, float | None]:
        """Adapt the global model here; return its weights and epsilon spent.

        Under DP the personal training is DP-SGD with the run's noise,
        reserved in this hospital's ledger before it runs, like a round.
        """
        from hospfed.client.personalise import personal_train_plan, personalise

        server_round, run_seed = decode_round(config)
        seed = hospital_seed(run_seed, server_round, f"{data.hospital}/personal")
        train = decode_plan(config, seed=seed)
        plan = personal_train_plan(personal, train)
        privacy = self._privacy_for()
        step, spent = None, None
        if privacy is not None:
            authorised = self._authorise(
                privacy, plan, data, server_round, noise_steps=train.local_steps
            )
            step, spent = authorised.step, authorised.epsilon_after
        weights = personalise(
            self.backend_name,
            decode_spec(config),
            list(parameters),
            data.x_train,
            data.y_train,
            personal,
            train,
            step,
        )
        return weights, spent


def _scores(kind: str, result: Evaluation) -> dict[str, Scalar]:
    """The metrics that describe a model of the label's kind."""
    if kind == "binary":
        return {Key.ACCURACY: result.accuracy, Key.AUC: result.auc}
    if kind == "multiclass":
        return {Key.ACCURACY: result.accuracy, Key.MACRO_F1: result.macro_f1}
    return {Key.RMSE: result.rmse, Key.MAE: result.mae}


SettingsResolver = Callable[[Context], NodeSettings]


def settings_from_node_config(context: Context) -> NodeSettings:
    """Deployment: the hospital's settings are its node config."""
    return NodeSettings.from_mapping(context.node_config)


def settings_by_partition(nodes: Sequence[NodeSettings]) -> SettingsResolver:
    """Map simulated nodes to hospitals: ``partition-id`` i gets ``nodes[i]``.

    Parameters
    ----------
    nodes : sequence of NodeSettings
        Settings of each virtual node.

    Returns
    -------
    callable
        Context to :class:`NodeSettings`.

    """
    table = tuple(nodes)

    def resolve(context: Context) -> NodeSettings:
        return table[int(context.node_config["partition-id"])]

    return resolve


def make_client_app(resolve: SettingsResolver = settings_from_node_config) -> ClientApp:
    """Build the ClientApp.

    Parameters
    ----------
    resolve : callable
        Finds a node's :class:`NodeSettings` from its context (default: its
        node config).

    Returns
    -------
    ClientApp
        Flower's ClientApp running :class:`HospitalClient`.

    """

    def client_fn(context: Context) -> Client:
        settings = resolve(context)
        worker = str(context.node_config.get(WORKER_SOCKET_KEY, "")).strip()
        if worker:  # hospfed-client start: the model and data are kept warm there
            return WorkerClient(Path(worker), str(context.run_id)).to_client()
        try:
            dataset = load_hospital_data(settings)
        except (DataError, KeyFileError) as exc:  # the coordinator names who failed
            raise type(exc)(f"{settings.hospital}: {exc}") from exc
        return HospitalClient(dataset, settings, str(context.run_id)).to_client()

    # SecAgg+ is outermost: the policy checks and records the plain update,
    # after the clipping-range check, before SecAgg+ masks it. Central DP's
    # clipping is innermost: everything outside sees the clipped update.
    mods = [
        secure_aggregation,
        make_outgoing_policy(resolve),
        clipping_range_check,
        central_clipping,
    ]
    return ClientApp(client_fn=client_fn, mods=mods)


def secure_aggregation(
    msg: Message, ctxt: Context, call_next: ClientAppCallable
) -> Message:
    """Flower's ``secaggplus_mod`` for SecAgg+ messages; others pass through.

    (``secaggplus_mod`` alone fails every train message that is not part of
    the SecAgg+ protocol, i.e. every round of a run without it.)
    """
    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def clipping_range_check(
    msg: Message, ctxt: Context, call_next: ClientAppCallable
) -> Message:
    """Refuse a SecAgg+ update that SecAgg+ would clip, instead of masking it.

    SecAgg+ sends ``round(r * Q) / Q * w`` (``r`` = examples / max weight)
    clipped to ``[-clipping_range, clipping_range]`` and never says when it
    clips: a value outside the range would silently change what DP-SGD
    computed. This fails the reply instead, naming how many values and the
    range (never the values).

    Raises
    ------
    ConfigError
        If any value would be clipped, or is not finite.

    """
    reply = call_next(msg, ctxt)
    state = ctxt.state.config_records.get(RECORD_KEY_STATE)
    if (
        msg.metadata.message_type != MessageType.TRAIN
        or reply.has_error()
        or RECORD_KEY_CONFIGS not in msg.content.config_records
        or state is None
        or "clipping_range" not in state
    ):
        return reply
    bound = float(state["clipping_range"])  # type: ignore[arg-type]
    levels = int(state["target_range"])  # type: ignore[arg-type]
    fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
    ratio = fitres.num_examples / float(state["max_weight"])  # type: ignore[arg-type]
    scale = round(ratio * levels) / levels
    outside = sum(
        int(np.count_nonzero(~(np.abs(a.astype(np.float64) * scale) <= bound)))
        for a in parameters_to_ndarrays(fitres.parameters)
    )
    if outside:
        raise ConfigError(
            f"update refused before secure aggregation: {outside} values (weight "
            f"x {scale:.4g}, the example weight) lie outside the SecAgg+ clipping "
            f"range +-{bound:g} or are not finite, and SecAgg+ would clip them "
            "silently; the coordinator must raise clipping-range"
        )
    return reply


app = make_client_app()
"""Deployment entry point (``hospfed.client.app:app``)."""
