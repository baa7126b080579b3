"""Load an experiment: YAML file (with its ``defaults`` groups) + schema + ``key=value`` overrides → validated config.

Everything that can be wrong with a config is found here, before any run exists, and raised as one-line
:class:`~latentdream.errors.InputError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.schema import DATA_KINDS, MODEL_KINDS, Experiment
from analysis.oip.params import INITS as OIP_INITS
from latentdream.errors import InputError

CONFIG_DIR = Path(__file__).parent / "configs"

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "cosine", "plateau", "onecycle")
ACTIVATIONS = ("leaky_relu", "relu", "selu")
AE_LOSSES = ("mse", "bce")
OIP_OPTIMIZERS = ("adam", "normalized")
DREAM_MODES = ("seed", "octaves", "tiled")


def available_experiments() -> list[str]:
    """Names of the shipped experiment files (``experiments/configs/*.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: an experiment file must be a mapping of sections")
    return data


def _resolve_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise InputError(f"experiment file {name_or_path} does not exist")
        return path
    path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise InputError(f"unknown experiment {name_or_path!r}; available: {', '.join(available_experiments())}")
    return path


def _compose(path: Path) -> DictConfig:
    """The file merged over its ``defaults`` (group files like ``model/ae_case1``, merged in order)."""
    data = _read_yaml(path)
    merged = OmegaConf.create()
    for entry in data.pop("defaults", []) or []:
        group_file = CONFIG_DIR / f"{entry}.yaml"
        if not group_file.is_file():
            raise InputError(f"{path.name}: defaults entry {entry!r} has no file {group_file}")
        group, _, _ = str(entry).partition("/")
        merged = OmegaConf.merge(merged, {group: _read_yaml(group_file)})
    return OmegaConf.merge(merged, data)


def _typed_section(raw: Any, kinds: dict[str, type], section: str) -> DictConfig:
    name = (raw or {}).get("name") if isinstance(raw, (dict, DictConfig)) else None
    if name not in kinds:
        raise InputError(f"{section}.name={name!r} is not allowed; allowed: {', '.join(kinds)}")
    try:
        return OmegaConf.merge(OmegaConf.structured(kinds[name]), raw)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise InputError(f"{section}.{key}: {str(err).splitlines()[0]}") from None


def _one_line(err: OmegaConfBaseException) -> str:
    text = str(err).splitlines()[0]
    key = getattr(err, "full_key", None)
    return f"{key}: {text}" if key and key not in text else text


def load_experiment(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose, type-check and validate an experiment.

    :param name_or_path: a shipped experiment name (``cnn_mnist``) or a path to a YAML file.
    :param overrides: ``key=value`` strings (OmegaConf dotlist syntax, e.g. ``optim.lr=5e-4``, ``analysis.b=[1,2]``).
    :raises InputError: unknown experiment or key, wrong type, value out of range.
    """
    path = _resolve_file(name_or_path)
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise InputError(f"override {item!r} is not of the form key=value")
    try:
        raw = _compose(path)
        raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
        raw.setdefault("name", path.stem)
        model = _typed_section(raw.get("model"), MODEL_KINDS, "model")
        data = _typed_section(raw.get("data"), DATA_KINDS, "data")
        rest = OmegaConf.masked_copy(raw, [k for k in raw if k not in ("model", "data")])
        cfg = OmegaConf.merge(OmegaConf.structured(Experiment), rest)
        cfg.model, cfg.data = model, data
    except OmegaConfBaseException as err:
        raise InputError(_one_line(err)) from None
    validate(cfg)
    return cfg


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise InputError(f"{key}={value!r} is not allowed; {allowed}")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    _require(value in choices, key, value, f"allowed: {', '.join(choices)}")


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = value is not None and (value >= 0 if allow_zero else value > 0)
    _require(ok, key, value, "it must be >= 0" if allow_zero else "it must be > 0")


def validate(cfg: DictConfig) -> None:
    """Check ranges and choices that types alone cannot express; raise :class:`InputError` on the first problem."""
    _choice(cfg, "optim.name", OPTIMIZERS)
    _choice(cfg, "scheduler.name", SCHEDULERS)
    for key in ("optim.lr", "data.batch_size", "trainer.max_epochs", "scheduler.step_size", "scheduler.gamma"):
        _positive(cfg, key)
    for key in ("optim.weight_decay", "optim.momentum", "data.num_workers", "data.val_fraction"):
        _positive(cfg, key, allow_zero=True)
    _require(cfg.data.val_fraction < 1, "data.val_fraction", cfg.data.val_fraction, "it must be < 1")

    if cfg.model.name == "conv_autoencoder":
        _choice(cfg, "model.act", ACTIVATIONS)
        _choice(cfg, "model.loss", AE_LOSSES)
        _positive(cfg, "model.z_dim")
        stride = 1
        for s in cfg.model.encoder_strides:
            stride *= s
        side = cfg.data.image_size
        _require(side % stride == 0, "data.image_size", side, f"the autoencoder needs a multiple of {stride}")
        for key in ("encoder_kernels", "decoder_kernels"):
            for k in cfg.model[key]:
                _require(k % 2 == 1, f"model.{key}", list(cfg.model[key]), "'same' padding needs odd kernel sizes")
    else:
        _require(cfg.data.name != "faces", "data.name", cfg.data.name, "the MNIST CNN trains on mnist or mnist_bundled")
        _positive(cfg, "model.n_classes")
        _require(0 <= cfg.model.dropout < 1, "model.dropout", cfg.model.dropout, "it must be in [0, 1)")
        _validate_cnn_targets(cfg)

    if cfg.data.name == "faces":
        _require(cfg.data.channels in (1, 3), "data.channels", cfg.data.channels, "allowed: 1, 3")
        _positive(cfg, "data.image_size")
    else:
        _require(cfg.data.image_size >= 28, "data.image_size", cfg.data.image_size, "MNIST digits need >= 28")
    if cfg.data.name == "mnist":
        _require(bool(cfg.data.root), "data.root", cfg.data.root, "give the folder with the MNIST IDX files")
    if cfg.data.name == "faces":
        _require(bool(cfg.data.root), "data.root", cfg.data.root, "give the folder with the face JPEGs")

    a = cfg.analysis
    _positive(cfg, "analysis.n_bins")
    _require(len(a.range) == 2 and a.range[0] < a.range[1], "analysis.range", list(a.range), "give [low, high], low < high")
    _require(len(a.b) > 0 and all(b > 0 for b in a.b), "analysis.b", list(a.b), "give a non-empty list of values > 0")
    _require(len(a.k) > 0 and all(k > 0 for k in a.k), "analysis.k", list(a.k), "give a non-empty list of values > 0")
    _require(a.n_random is None or a.n_random > 0, "analysis.n_random", a.n_random, "it must be > 0 (or null)")
    _positive(cfg, "analysis.every_n_epochs", allow_zero=True)
    _positive(cfg, "oip.every_n_epochs", allow_zero=True)
    _positive(cfg, "oip.steps", allow_zero=True)
    _positive(cfg, "oip.lr")
    _choice(cfg, "oip.optimizer", OIP_OPTIMIZERS)
    for mode in cfg.dream.modes:
        _require(mode in DREAM_MODES, "dream.modes", list(cfg.dream.modes), f"allowed: {', '.join(DREAM_MODES)}")
    _positive(cfg, "dream.cycles")
    _positive(cfg, "dream.octaves")
    _require(1.0 < cfg.dream.octave_scale <= 2.0, "dream.octave_scale", cfg.dream.octave_scale, "it must be in (1, 2]")


def _validate_cnn_targets(cfg: DictConfig) -> None:
    """Layer names and map indices that OIPs and dreams address must exist in the configured CNN."""
    maps = {f"conv{i + 1}": n for i, n in enumerate(cfg.model.conv_filters)}
    allowed = f"the CNN's conv layers are {', '.join(f'{k} ({v} maps)' for k, v in maps.items())}"
    for layer in cfg.oip.layers:
        _require(layer in maps, "oip.layers", list(cfg.oip.layers), allowed)
    if cfg.oip.maps is not None:
        fewest = min(maps[layer] for layer in cfg.oip.layers) if cfg.oip.layers else 0
        for index in cfg.oip.maps:
            _require(0 <= index < fewest, "oip.maps", list(cfg.oip.maps), f"map indices run from 0 to {fewest - 1}")
    for init in cfg.oip.inits:
        _require(init in OIP_INITS, "oip.inits", list(cfg.oip.inits), f"allowed: {', '.join(OIP_INITS)}")
    for key in ("dream.objective", "dream.layer_objective"):
        spec = OmegaConf.select(cfg, key)
        layer, _, index = spec.partition(":")
        _require(layer in maps, key, spec, allowed)
        if index:
            _require(index.isdigit() and int(index) < maps[layer], key, spec, f"{layer} has maps 0 to {maps[layer] - 1}")
    for layer in cfg.dream.layers or {}:
        _require(layer in maps, "dream.layers", dict(cfg.dream.layers), allowed)
    if cfg.dream.enabled and cfg.dream.image:
        from analysis.dream import load_image

        load_image(cfg.dream.image)  # missing, unreadable or smaller than 28×28: stops before a run is made


def flatten(cfg: DictConfig) -> dict[str, str]:
    """Flat ``section.key`` → string map of every resolved value (MLflow params)."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            out[prefix] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text (logged as ``config.yaml``)."""
    return OmegaConf.to_yaml(cfg, resolve=True)
