"""Run configurations: dataclasses loadable from TOML, with ``section.key=value`` overrides.

A run is described by :class:`RunConfig` with five sections (``[data]``, ``[model]``,
``[training]``, ``[observe]``, ``[output]``) plus a ``name`` and ``description``. Every field has
a default, so a TOML file only states what differs. Fields whose default is ``None`` are
omitted in TOML (which has no null); on the command line ``--set key=none`` restores None. The
resolved configuration is written as JSON beside the results (:meth:`RunConfig.to_dict`).

Learning rate and weight decay are η and λ of the package's convention (docs/theory.md §1.2):
Φ = (1/(2N))‖F − Y‖² + Σ_l (λ_l/2)‖W_l‖² (+ (λ_H/2)‖H₁‖², a sum over samples), and
θ ← θ − η∇Φ. Convert a paper's torch settings with :func:`ufm.conventions.to_paper_convention`
(``nn.MSELoss()`` and ``SGD(lr, weight_decay=wd)``: λ = K·wd/2, η = 2·lr/K).

Reading TOML needs ``tomllib`` (Python ≥ 3.11) or the ``tomli`` package.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


def _require_toml() -> Any:
    if _toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise RuntimeError(
            "reading TOML configurations needs Python >= 3.11 (module tomllib) or the package "
            "tomli (`pip install tomli`) on Python 3.10"
        )
    return _toml


@dataclass
class DataConfig:
    """Which data, which subset, how prepared (:mod:`fullnet.data`).

    Attributes
    ----------
    name : str
        ``"mnist-5k"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or ``"gaussian"``.
    data_root : str, optional
        Folder of the data files (default ``$UFM_DATA_ROOT``; Fashion-MNIST: the Debian path).
    classes : list of int
        Keep only these classes, relabelled 0..len−1 in this order (empty: all classes).
    per_class : int, optional
        n, training samples per class (class-balanced, seeded); None: every sample.
    subset_seed : int
    order_by_class : bool
        Samples ordered by class (docs/theory.md §1.1).
    standardization : str
        ``"none"``, ``"unit"``, ``"global"``, ``"channel"``, ``"feature"`` or ``"centred"``
        (per-coordinate mean removed, one common scale; :func:`fullnet.data.fit_standardization`),
        fitted on the training subset and applied to the test set unchanged.
    input_norm : float
        The mean sample norm ‖x − x̄‖ after ``"centred"`` (default 1); other modes need 1.
    targets : str
        ``"one_hot"`` or ``"plus_minus_one"``.
    test_per_class : int
        Test samples per class for a held-out accuracy (0: none); gaussian draws with another seed.
    gaussian_classes, gaussian_dimension, gaussian_margin, gaussian_noise
        K and the geometry of the synthetic mixture (:func:`fullnet.data.gaussian_mixture`).
    """

    name: str = "mnist-5k"
    data_root: str | None = None
    classes: list[int] = field(default_factory=list)
    per_class: int | None = 20
    subset_seed: int = 0
    order_by_class: bool = True
    standardization: str = "global"
    input_norm: float = 1.0
    targets: str = "one_hot"
    test_per_class: int = 0
    gaussian_classes: int = 3
    gaussian_dimension: int = 20
    gaussian_margin: float = 4.0
    gaussian_noise: float = 1.0


@dataclass
class ModelConfig:
    """The network (:mod:`fullnet.architectures`).

    Attributes
    ----------
    architecture : str
        ``"mlp"`` (:class:`~fullnet.architectures.PyramidalMLP`) or ``"resnet20"``.
    nonlinear_widths : list of int
        p_1, …, p_{L1} (for ``resnet20``: the non-linear head layers, may be empty).
    linear_depth : int
        L2, the number of linear layers.
    linear_width : int, optional
        Width of the hidden linear layers (default: the last non-linear width).
    activation : str
        ``"relu"`` or ``"smooth_leaky"`` (σ_γ).
    gamma : float
    bias : bool
    init : str
        ``"lecun"``, ``"he"``, ``"xavier"`` or ``"uniform"``.
    init_gain, second_layer_scale : float
    backbone_layers : int
        b, the number of leading weight matrices W_1, …, W_b of an MLP's layer stack that form
        its backbone (the layers before the feature-penalty layer of a DUFM-like experiment) and
        take ``backbone_init`` × ``backbone_init_gain``; the head W_{b+1}, …, W_L takes ``init`` ×
        ``init_gain``. 0 (default): every layer takes ``init`` × ``init_gain``. MLP only, b < L.
    backbone_init : str, optional
        Initialization of W_1, …, W_b (default ``init``).
    backbone_init_gain : float, optional
        Gain of W_1, …, W_b (default ``init_gain``).
    pyramidal : bool
        Require non-increasing widths after the first (MLP).
    batch_norm : bool
        Batch normalization in the ResNet20 backbone.
    shortcut : str
        ResNet shortcut ``"A"`` or ``"B"``.
    seed : int
        Seed of the initialization.
    """

    architecture: str = "mlp"
    nonlinear_widths: list[int] = field(default_factory=lambda: [256, 128, 64])
    linear_depth: int = 2
    linear_width: int | None = None
    activation: str = "relu"
    gamma: float = 0.2
    bias: bool = False
    init: str = "lecun"
    init_gain: float = 1.0
    second_layer_scale: float = 1.0
    backbone_layers: int = 0
    backbone_init: str | None = None
    backbone_init_gain: float | None = None
    pyramidal: bool = True
    batch_norm: bool = True
    shortcut: str = "A"
    seed: int = 0


@dataclass
class TrainingConfig:
    """Optimizer, objective and schedule (:mod:`fullnet.training`), in docs/theory.md §1.2's convention.

    Attributes
    ----------
    optimizer : str
        ``"gd"`` (full batch, the theory's algorithm) or ``"sgd"`` (minibatches of ``batch_size``).
    epochs : int
        Passes over the data (for ``"gd"``, the number of steps).
    learning_rate : float
        η.
    weight_decay : float
        λ of every weight matrix (and of the backbone, unless overridden).
    layer_weight_decay : list of float
        λ_1, …, λ_L of the layer stack's matrices (empty: all ``weight_decay``).
    backbone_weight_decay : float, optional
        λ of the backbone's weights (convolutions); default ``weight_decay``.
    feature_penalty : float
        λ_H of (λ_H/2)‖H₁‖_F² (sum over samples) on the features of ``feature_penalty_layer``.
    feature_penalty_layer : int
        0: the stack input (the backbone output of a ResNet; not allowed for an MLP, whose Z_0 is
        the data); l ≥ 1: the post-activation Z_l of layer l.
    batch_size : int, optional
        Minibatch size for ``"sgd"``; for ``"gd"`` it must be None or N.
    momentum : float
        Heavy-ball momentum (0: plain GD/SGD; the identities J7, J12 need 0).
    lr_drop_fraction, lr_drop_factor : float
        η is multiplied by ``lr_drop_factor`` from epoch ⌊fraction·epochs⌋ on (1.0: no drop).
    seed : int
        Seed of the minibatch order.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
    dtype : str
        ``"float32"`` (default) or ``"float64"`` training precision.
    chunk_size : int, optional
        Full-batch gradients accumulated over chunks of this many samples (memory); exact for
        networks without batch normalization.
    regularize_one_dimensional : bool
        Also decay biases and batch-norm parameters (default False: unregularized, §1.2).
    threads : int, optional
        ``torch.set_num_threads`` for the run (default: torch's choice). On a shared machine 1
        avoids thread oversubscription.
    """

    optimizer: str = "gd"
    epochs: int = 1000
    learning_rate: float = 0.1
    weight_decay: float = 1e-3
    layer_weight_decay: list[float] = field(default_factory=list)
    backbone_weight_decay: float | None = None
    feature_penalty: float = 0.0
    feature_penalty_layer: int = 0
    batch_size: int | None = None
    momentum: float = 0.0
    lr_drop_fraction: float = 0.8
    lr_drop_factor: float = 0.1
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    chunk_size: int | None = None
    regularize_one_dimensional: bool = False
    threads: int | None = None


@dataclass
class ObserveConfig:
    """What is measured and when (:mod:`fullnet.observe`).

    Attributes
    ----------
    log_points : int
        Number of log-spaced epochs at which every metric is recorded (0 and the last included).
    metric_dtype : str
        Precision of the feature pass for metrics (``"float64"``: a float64 copy of the model).
    chunk_size : int, optional
        Samples per forward pass when measuring.
    rank_tolerance : float
        Relative tolerance of the numerical rank (docs/theory.md §3 RANK).
    per_layer : bool
        Per-layer collapse metrics (False: loss and accuracy only).
    """

    log_points: int = 30
    metric_dtype: str = "float64"
    chunk_size: int | None = None
    rank_tolerance: float = 1e-3
    per_layer: bool = True


@dataclass
class OutputConfig:
    """Where results go and how often the state is saved.

    Attributes
    ----------
    directory : str
        Parent folder; the run writes to ``directory/name``.
    checkpoint_every : int
        Epochs between checkpoints (0: none by epoch count).
    checkpoint_minutes : float
        Wall-clock minutes between checkpoints (default 5; 0: none by time). With either, a run
        is also checkpointed at the end, at ``--stop-at-epoch`` and on SIGINT or SIGTERM.
    progress : bool
        Show a tqdm progress bar.
    tensorboard : bool
        Also write every snapshot as TensorBoard scalars under ``directory/name/tensorboard``
        (needs the ``tensorboard`` package: ``pip install 'ufm-sandbox[tensorboard]'``). The run
        always writes ``history.jsonl`` (one line per snapshot, as it is taken) and ``train.log``.
    """

    directory: str = "outputs/fullnet"
    checkpoint_every: int = 0
    checkpoint_minutes: float = 5.0
    progress: bool = True
    tensorboard: bool = False


@dataclass
class RunConfig:
    """One training run: data, model, training, observation, output."""

    name: str = "run"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serializable)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, mapping: dict[str, Any]) -> "RunConfig":
        """Build from a nested dict (a parsed TOML or JSON file); unknown keys are errors."""
        config = _build(cls, mapping, "")
        validate_config(config)
        return config

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> "RunConfig":
        """A copy with ``section.key=value`` assignments applied (values parsed as TOML)."""
        return apply_overrides(self, overrides)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "observe": ObserveConfig,
    "output": OutputConfig,
}


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        if len(arguments) == 1 and len(typing.get_args(annotation)) == 2:
            return True, arguments[0]
    return False, annotation


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    optional, inner = _is_optional(annotation)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"{key} must not be None")
    if typing.get_origin(inner) is list:
        (element,) = typing.get_args(inner)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(item, element, f"{key}[{index}]") for index, item in enumerate(value)]
    if inner is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if inner is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {inner!r}")  # pragma: no cover


def _build(cls: type, mapping: Any, prefix: str) -> Any:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{prefix or 'configuration'} must be a table, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = [item.name for item in dataclasses.fields(cls)]
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        where = f"section [{prefix.rstrip('.')}]" if prefix else "the top level"
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {names}")
    values = {}
    for name in names:
        if name not in mapping:
            continue
        key = prefix + name
        if dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], mapping[name], key + ".")
        else:
            values[name] = _coerce(mapping[name], hints[name], key)
    return cls(**values)


def _parse_value(text: str) -> Any:
    toml = _require_toml()
    try:
        return toml.loads(f"value = {text}")["value"]
    except Exception:
        return text  # a bare word is a string: --set data.name=mnist


def apply_overrides(config: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Apply ``section.key=value`` assignments; values are parsed as TOML (bare words: strings).

    Examples: ``training.epochs=500``, ``model.nonlinear_widths=[512,256]``,
    ``data.name=fashion-mnist``, ``training.batch_size=none``, ``name=quick``.
    """
    mapping = config.to_dict()
    for override in overrides:
        if not isinstance(override, str) or "=" not in override:
            raise ConfigError(f"override must look like section.key=value, got {override!r}")
        path, text = override.split("=", 1)
        parts = path.strip().split(".")
        target = mapping
        for part in parts[:-1]:
            if part not in target or not isinstance(target[part], dict):
                raise ConfigError(
                    f"override {override!r}: no section {part!r}; sections: {sorted(SECTIONS)}"
                )
            target = target[part]
        if parts[-1] not in target:
            raise ConfigError(
                f"override {override!r}: unknown key {parts[-1]!r}; allowed: {sorted(target)}"
            )
        target[parts[-1]] = _parse_value(text.strip())
    return RunConfig.from_dict(mapping)


#: The configurations shipped with the package (``fullnet/configs/*.toml``): run configurations
#: and sweep files (``sweep_*.toml``), each reachable by its name.
CONFIG_DIRECTORY = Path(__file__).resolve().parent / "configs"
CONFIG_SUFFIXES = (".toml", ".json")


def config_names(kind: str = "all") -> list[str]:
    """Names of the packaged configurations (file names without ``.toml``), sorted.

    ``kind``: ``"all"``, ``"run"`` (run configurations) or ``"sweep"`` (``sweep_*`` files).
    """
    if kind not in ("all", "run", "sweep"):
        raise ValueError(f"kind must be 'all', 'run' or 'sweep', got {kind!r}")
    names = sorted(path.stem for path in CONFIG_DIRECTORY.glob("*.toml"))
    if kind == "all":
        return names
    return [name for name in names if name.startswith("sweep_") == (kind == "sweep")]


def packaged_config(name: str) -> Path | None:
    """The packaged configuration called ``name`` (with or without ``.toml``), or None."""
    if not name or Path(name).name != name or name.startswith("."):
        return None
    for candidate in (name, *(name + suffix for suffix in CONFIG_SUFFIXES)):
        path = CONFIG_DIRECTORY / candidate
        if path.is_file():
            return path
    return None


def resolve_config_path(name_or_path: str | Path, what: str = "configuration file") -> Path:
    """A configuration given as a file path or as the name of a packaged configuration.

    An existing file wins. Otherwise a bare name (``jacot_mlp_mnist_quick``, with or without
    ``.toml``), or a path into a folder called ``configs`` that does not exist (the repository's
    former ``configs/NAME.toml``), is looked up among the packaged configurations
    (:data:`CONFIG_DIRECTORY`, :func:`config_names`).

    Raises
    ------
    FileNotFoundError
        If neither exists; the message lists the packaged names.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():  # a file, or a folder/device that the reader then names as such
        return path
    text = str(name_or_path)
    if path.parent == Path(".") or path.parent.name == "configs":
        packaged = packaged_config(path.name)
        if packaged is not None:
            return packaged
    kind = "sweep" if what.startswith("sweep") else "run" if what.startswith("configuration") else "all"
    names = ", ".join(config_names(kind)) or "none"
    raise FileNotFoundError(
        f"{what} {text} does not exist (neither a file nor a packaged configuration; "
        f"packaged: {names})"
    )


#: Most snapshots a run may request (each one is a full measurement pass).
MAX_LOG_POINTS = 10_000


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The table of a TOML (or, by suffix ``.json``, JSON) file, with one clear error per failure.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        The path does not exist, is a folder, or cannot be read (the message names it).
    ConfigError
        The file is empty, not UTF-8, not valid TOML/JSON, or does not hold a table.
    """
    from .guards import read_input_text

    path = Path(path)
    try:
        text = read_input_text(path, what)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(str(error)) from None
    if path.suffix == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: invalid JSON ({error})") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid JSON (nested too deeply)") from None
    else:
        toml = _require_toml()
        try:
            mapping = toml.loads(text)
        except toml.TOMLDecodeError as error:
            raise ConfigError(f"{path}: invalid TOML ({error})") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid TOML (nested too deeply)") from None
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a table of settings, got a JSON {type(mapping).__name__}")
    return mapping


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a TOML (or JSON) configuration and apply overrides.

    ``path`` is a file, or the name of a packaged configuration (``"gaussian_smoke"``; see
    :func:`resolve_config_path`).

    Raises
    ------
    FileNotFoundError
        If it is neither an existing file nor a packaged name.
    IsADirectoryError
        If the path is a folder.
    ConfigError
        On an empty file, invalid TOML or JSON, unknown keys, wrong types or invalid values (the
        message names the file and the key).
    """
    path = resolve_config_path(path)
    mapping = read_mapping(path, "configuration file")
    try:
        config = RunConfig.from_dict(mapping)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return apply_overrides(config, overrides) if overrides else config


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {allowed}, got {value!r}")


def _positive(value: Any, key: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _validate_backbone_init(model: ModelConfig) -> None:
    from .architectures import INITIALIZATIONS

    if model.backbone_init is not None:
        _choice(model.backbone_init, INITIALIZATIONS, "model.backbone_init")
    _positive(model.backbone_init_gain, "model.backbone_init_gain")
    layers = model.backbone_layers
    if layers < 0:
        raise ConfigError(f"model.backbone_layers must be >= 0, got {layers}")
    if layers == 0:
        if model.backbone_init is not None or model.backbone_init_gain is not None:
            raise ConfigError(
                "model.backbone_init and model.backbone_init_gain need model.backbone_layers >= 1 "
                "(the number of leading layers they initialize)"
            )
        return
    if model.architecture != "mlp":
        raise ConfigError(
            f"model.backbone_layers applies to an MLP's layer stack; a {model.architecture} backbone keeps "
            f"its own initialization (set model.backbone_layers = 0), got {layers}"
        )
    depth = len(model.nonlinear_widths) + model.linear_depth
    if layers >= depth:
        raise ConfigError(
            f"model.backbone_layers must lie in 0..{depth - 1} (at least one head layer of the L = {depth}), "
            f"got {layers}"
        )


def validate_config(config: RunConfig) -> RunConfig:
    """Check value ranges and choices across sections; raise :class:`ConfigError` naming the key."""
    from .architectures import ACTIVATIONS, INITIALIZATIONS
    from .data import DATASET_NAMES, STANDARDIZATIONS, TARGET_KINDS

    data, model, training = config.data, config.model, config.training
    observe, output = config.observe, config.output
    if not config.name or any(character in config.name for character in "/\\") or config.name in (".", ".."):
        raise ConfigError(f"name must be a non-empty folder name without slashes, got {config.name!r}")
    _choice(data.name, DATASET_NAMES, "data.name")
    _choice(data.standardization, STANDARDIZATIONS, "data.standardization")
    _positive(data.input_norm, "data.input_norm")
    if data.input_norm != 1.0 and data.standardization != "centred":
        raise ConfigError(
            f"data.input_norm = {data.input_norm} applies to data.standardization = 'centred' only, "
            f"got {data.standardization!r}"
        )
    _choice(data.targets, TARGET_KINDS, "data.targets")
    _positive(data.per_class, "data.per_class")
    if data.classes and (len(set(data.classes)) != len(data.classes) or len(data.classes) < 2
                         or min(data.classes) < 0):
        raise ConfigError(f"data.classes must list at least two distinct classes >= 0, got {data.classes}")
    if data.classes and data.name == "gaussian":
        raise ConfigError("data.classes does not apply to 'gaussian'; set data.gaussian_classes")
    _positive(data.test_per_class, "data.test_per_class", allow_zero=True)
    _positive(data.gaussian_dimension, "data.gaussian_dimension")
    if data.gaussian_classes < 2:
        raise ConfigError(f"data.gaussian_classes must be at least 2, got {data.gaussian_classes}")
    _positive(data.gaussian_margin, "data.gaussian_margin", allow_zero=True)
    _positive(data.gaussian_noise, "data.gaussian_noise", allow_zero=True)
    _choice(model.architecture, ("mlp", "resnet20"), "model.architecture")
    _choice(model.activation, ACTIVATIONS, "model.activation")
    _choice(model.init, INITIALIZATIONS, "model.init")
    _choice(model.shortcut, ("A", "B"), "model.shortcut")
    for index, width in enumerate(model.nonlinear_widths):
        _positive(width, f"model.nonlinear_widths[{index}]")
    if model.architecture == "mlp" and not model.nonlinear_widths:
        raise ConfigError("model.nonlinear_widths must not be empty for an MLP (L1 >= 1)")
    _positive(model.linear_depth, "model.linear_depth")
    _positive(model.linear_width, "model.linear_width")
    if not 0.0 < model.gamma < 1.0:
        raise ConfigError(f"model.gamma must lie in (0, 1), got {model.gamma}")
    _positive(model.init_gain, "model.init_gain")
    _positive(model.second_layer_scale, "model.second_layer_scale")
    _validate_backbone_init(model)
    _choice(training.optimizer, ("gd", "sgd"), "training.optimizer")
    _positive(training.epochs, "training.epochs")
    _positive(training.learning_rate, "training.learning_rate")
    _positive(training.weight_decay, "training.weight_decay", allow_zero=True)
    for index, value in enumerate(training.layer_weight_decay):
        _positive(value, f"training.layer_weight_decay[{index}]", allow_zero=True)
    depth = len(model.nonlinear_widths) + model.linear_depth
    if training.layer_weight_decay and len(training.layer_weight_decay) != depth:
        raise ConfigError(
            f"training.layer_weight_decay must list L = {depth} values (one per weight matrix), "
            f"got {len(training.layer_weight_decay)}"
        )
    _positive(training.backbone_weight_decay, "training.backbone_weight_decay", allow_zero=True)
    _positive(training.feature_penalty, "training.feature_penalty", allow_zero=True)
    if not 0 <= training.feature_penalty_layer <= depth:
        raise ConfigError(
            f"training.feature_penalty_layer must lie in 0..{depth}, got {training.feature_penalty_layer}"
        )
    if (
        training.feature_penalty > 0
        and training.feature_penalty_layer == 0
        and model.architecture == "mlp"
    ):
        raise ConfigError(
            "training.feature_penalty on layer 0 needs a backbone (resnet20); for an MLP choose "
            "training.feature_penalty_layer >= 1"
        )
    _positive(training.batch_size, "training.batch_size")
    if training.optimizer == "sgd" and training.batch_size is None:
        raise ConfigError("training.batch_size is required when training.optimizer = 'sgd'")
    if not 0.0 <= training.momentum < 1.0:
        raise ConfigError(f"training.momentum must lie in [0, 1), got {training.momentum}")
    if not 0.0 < training.lr_drop_fraction <= 1.0:
        raise ConfigError(f"training.lr_drop_fraction must lie in (0, 1], got {training.lr_drop_fraction}")
    _positive(training.lr_drop_factor, "training.lr_drop_factor")
    _choice(training.dtype, ("float32", "float64"), "training.dtype")
    _positive(training.chunk_size, "training.chunk_size")
    _positive(training.threads, "training.threads")
    if training.device != "auto" and not training.device.split(":")[0] in ("cpu", "cuda", "mps"):
        raise ConfigError(f"training.device must be 'auto', 'cpu' or 'cuda[:i]', got {training.device!r}")
    _positive(observe.log_points, "observe.log_points", allow_zero=True)
    if observe.log_points > MAX_LOG_POINTS:
        raise ConfigError(f"observe.log_points must be at most {MAX_LOG_POINTS}, got {observe.log_points}")
    _choice(observe.metric_dtype, ("float32", "float64"), "observe.metric_dtype")
    _positive(observe.chunk_size, "observe.chunk_size")
    _positive(observe.rank_tolerance, "observe.rank_tolerance")
    _positive(output.checkpoint_every, "output.checkpoint_every", allow_zero=True)
    _positive(output.checkpoint_minutes, "output.checkpoint_minutes", allow_zero=True)
    if not output.directory:
        raise ConfigError("output.directory must not be empty")
    if output.tensorboard and not tensorboard_available():
        raise ConfigError(
            "output.tensorboard = true needs the tensorboard package, which is not installed: "
            "pip install 'ufm-sandbox[tensorboard]' (or set output.tensorboard = false)"
        )
    return config


def tensorboard_available() -> bool:
    """True when the ``tensorboard`` package (which ``torch.utils.tensorboard`` needs) is
    installed; nothing is imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        return False


__all__ = [
    "CONFIG_DIRECTORY",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "ObserveConfig",
    "OutputConfig",
    "RunConfig",
    "SECTIONS",
    "TrainingConfig",
    "apply_overrides",
    "config_names",
    "load_config",
    "packaged_config",
    "resolve_config_path",
    "read_mapping",
    "tensorboard_available",
    "validate_config",
]
