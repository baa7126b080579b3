"""Load an experiment: YAML file (with its ``defaults`` groups) + schema + ``key=value`` overrides → validated config.

Everything that can be wrong with a config is found here, before any run exists, and raised as one-line
:class:`~latentdream.errors.InputError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from analysis import tracking
from analysis.oip.objectives import parse_target
from experiments.run.schema import DATA_KINDS, MODEL_KINDS, SCALAR_KEYS, SETTINGS_SECTIONS, Experiment
from latentdream.errors import InputError, require
from latentdream.names import check_name

CONFIG_DIR = Path(__file__).parents[1] / "configs"


def available_experiments() -> list[str]:
    """Names of the shipped experiment files (``experiments/configs/*.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


# libyaml's safe loader when present: fast, and it caps nesting depth itself (the pure-Python one recurses)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 1_000_000  # an experiment file (or a run's config.yaml) is a few kB
MAX_NODES = 100_000  # values and containers after expanding every YAML alias (a real config has a few hundred)


def _read_yaml(path: Path) -> dict:
    """The file as a mapping; a hostile file — too large, binary, too deeply nested, an alias that refers to itself
    or aliases that expand to more than :data:`MAX_NODES` values (an "alias bomb") — is one :class:`InputError`,
    found in milliseconds: the expansion is counted, never carried out."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {size:,} bytes is too large for an experiment file (at most {MAX_FILE_BYTES:,})")
        text = path.read_bytes().decode("utf-8")
        data = yaml.load(text, Loader=SAFE_LOADER) or {}  # safe: plain values only
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a text file (not UTF-8 at byte {err.start})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an experiment file") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: an experiment file must be a mapping of sections")
    _check_expansion(data, path)
    return data


def check_override_value(item: str) -> None:
    """An override's value is YAML too (OmegaConf parses it): the same limits as a file's, one line when it does not
    parse."""
    key, _, value = item.partition("=")
    try:
        parsed = yaml.load(value, Loader=SAFE_LOADER)
    except (yaml.YAMLError, RecursionError) as err:
        raise InputError(f"override {key}={value!r} is not a valid value ({str(err).splitlines()[0]}); quote "
                         "text that YAML would read as syntax") from None
    _check_expansion(parsed, f"override {key}")


def _check_expansion(data: Any, path: Path | str) -> None:
    """Count the values ``data`` holds once every alias is expanded (each shared node's count is computed once, so
    this takes time linear in the file); refuse a node that contains itself or a total above :data:`MAX_NODES`."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def count(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise InputError(f"{path}: a YAML alias refers to a node that contains it (refused)")
        open_nodes.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1 + sum(count(child) for child in children)
        open_nodes.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            raise InputError(f"{path}: its YAML aliases expand to more than {MAX_NODES:,} values (refused)")
        return total

    try:
        count(data)
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an experiment file") from None


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


_DEFAULTS_ENTRY = re.compile(r"[A-Za-z0-9_]+/[A-Za-z0-9_-]+")  # a group file's name, never a path out of configs/


def _compose(path: Path) -> DictConfig:
    """The file merged over its ``defaults`` (group files like ``model/ae_case1``, merged in order)."""
    data = _read_yaml(path)
    merged = OmegaConf.create()
    for entry in data.pop("defaults", []) or []:
        if not isinstance(entry, str) or not _DEFAULTS_ENTRY.fullmatch(entry):
            raise InputError(f"{path.name}: defaults entry {entry!r} is not allowed; give group/name, e.g. model/mnist_cnn "
                             f"(groups: {', '.join(sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir()))})")
        group_file = CONFIG_DIR / f"{entry}.yaml"
        if not group_file.is_file():
            raise InputError(f"{path.name}: defaults entry {entry!r} has no file {group_file}")
        group, _, _ = str(entry).partition("/")
        merged = OmegaConf.merge(merged, {group: _read_yaml(group_file)})
    return OmegaConf.merge(merged, data)


def _typed_section(raw: Any, kinds: dict[str, type], section_name: str) -> DictConfig:
    name = (raw or {}).get("name") if isinstance(raw, (dict, DictConfig)) else None
    if name not in kinds:
        raise InputError(f"{section_name}.name={name!r} is not allowed; allowed: {', '.join(kinds)}")
    try:
        return OmegaConf.merge(OmegaConf.structured(kinds[name]), raw)
    except OmegaConfBaseException as err:
        err.full_key = f"{section_name}.{getattr(err, 'full_key', None) or '?'}"
        raise InputError(one_line(err)) from None


def one_line(err: OmegaConfBaseException) -> str:
    # a resolved interpolation's value is never repeated: it may come from the environment, where secrets live
    text = re.sub(r"Value '.*?' of type", "The resolved value of type", str(err).splitlines()[0])
    key = getattr(err, "full_key", None)
    choice = re.fullmatch(r"Invalid value '(.*)', expected one of \[(.*)\]", text)
    if key and choice:  # a value outside an Enum: say it as every other rule does
        return f"{key}={choice.group(1)!r} is not allowed; allowed: {choice.group(2)}"
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
        check_override_value(item)
    try:
        raw = _compose(path)
        raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
        raw.setdefault("name", path.stem)
        model = _typed_section(raw.get("model"), MODEL_KINDS, "model")
        data = _typed_section(raw.get("data"), DATA_KINDS, "data")
        rest = OmegaConf.masked_copy(raw, [k for k in raw if k not in ("model", "data")])
        cfg = OmegaConf.merge(OmegaConf.structured(Experiment), rest)
        cfg.model, cfg.data = model, data
        _check_literal_names(cfg)
        # Interpolations (${oc.env:X}, ${a.b}) stay in the config as text: the code reads their resolved values
        # (OmegaConf resolves on access), what is logged (flatten, to_yaml) holds the text, so a secret in the
        # environment never reaches the store. Each must resolve now: an unset variable is refused here.
        OmegaConf.to_container(cfg, resolve=True)
        validate(cfg)
    except OmegaConfBaseException as err:
        raise InputError(one_line(err)) from None
    return cfg


# Names are logged as names (the experiment's, the run's, the tag `experiment`): given literally, never from the
# environment, where a secret may live.
LITERAL_KEYS = ("name", "tracking.experiment_name", "tracking.run_name")


def _check_literal_names(cfg: DictConfig) -> None:
    """Refuse an interpolation in :data:`LITERAL_KEYS`: a name is logged (and shown) as it is."""
    for key in LITERAL_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if node is not None and OmegaConf.is_interpolation(node, leaf):
            raw = OmegaConf.to_container(node, resolve=False)[leaf]
            raise InputError(f"{key}={raw!r} is not allowed: a name is logged as it is, so it is given literally, "
                             "never through an interpolation (the environment may hold secrets)")


def section(cfg: DictConfig, name: str) -> Any:
    """The one conversion of a config section: its dataclass (e.g. ``section(cfg, "oip")`` is an
    :class:`~analysis.settings.OIPSettings`), built by OmegaConf, its rules checked on the way."""
    return OmegaConf.to_object(cfg[name])


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = _get(cfg, key)
    ok = value is not None and (value >= 0 if allow_zero else value > 0)
    require(ok, key, value, "it must be >= 0" if allow_zero else "it must be > 0")


def validate(cfg: DictConfig) -> None:
    """Check what types and enums alone cannot express; raise :class:`InputError` on the first problem.

    The settings sections (:data:`~experiments.run.schema.SETTINGS_SECTIONS`) check their own rules when built; the
    rules here are those of the other sections and those that need two sections at once (the model and its data,
    the CNN's layers and the OIP/dream targets).
    """
    for name in (*SETTINGS_SECTIONS, "trainer", "tracking"):
        check_section(name, cfg[name])
    check_name("name", cfg.name)
    validate_across(cfg)


def _get(cfg: Any, key: str) -> Any:
    """``cfg.<section>.<key>``; the sections may be configs or built dataclasses
    (:class:`~experiments.run.grid_check.GridChecker`)."""
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate_across(cfg: Any) -> None:
    """The rules of the data and model sections and those that need two sections at once (the model and its data,
    the CNN's layers and the OIP/dream targets); the sections may be configs or built dataclasses."""
    _positive(cfg, "data.batch_size")
    _positive(cfg, "data.num_workers", allow_zero=True)
    # the best checkpoint, the plateau schedule and the logged model's signature all need validation batches
    require(0 < cfg.data.val_fraction < 1, "data.val_fraction", cfg.data.val_fraction, "it must be in (0, 1)")

    if cfg.model.name == "conv_autoencoder":
        _positive(cfg, "model.z_dim")
        slope = cfg.model.leaky_slope
        require(0 <= slope < 1, "model.leaky_slope", slope, "it must be in [0, 1)")
        stride = 1
        for s in cfg.model.encoder_strides:
            stride *= s
        side = cfg.data.image_size
        require(side % stride == 0, "data.image_size", side, f"the autoencoder needs a multiple of {stride}")
        for key in ("encoder_kernels", "decoder_kernels"):
            for k in getattr(cfg.model, key):
                require(k % 2 == 1, f"model.{key}", list(getattr(cfg.model, key)), "'same' padding needs odd kernel sizes")
    else:
        require(cfg.data.name != "faces", "data.name", cfg.data.name, "the MNIST CNN trains on mnist or mnist_bundled")
        _positive(cfg, "model.n_classes")
        require(0 <= cfg.model.dropout < 1, "model.dropout", cfg.model.dropout, "it must be in [0, 1)")
        _validate_cnn_targets(cfg)

    if cfg.data.name == "faces":
        require(cfg.data.channels in (1, 3), "data.channels", cfg.data.channels, "allowed: 1, 3")
        _positive(cfg, "data.image_size")
    else:
        require(cfg.data.image_size >= 28, "data.image_size", cfg.data.image_size, "MNIST digits need >= 28")
    if cfg.data.name == "mnist":
        require(bool(cfg.data.root), "data.root", cfg.data.root, "give the folder with the MNIST IDX files")
    if cfg.data.name == "faces":
        require(bool(cfg.data.root), "data.root", cfg.data.root, "give the folder with the face JPEGs")


def check_section(name: str, node: DictConfig) -> None:
    """The rules that read section ``name`` alone: a settings section's own (its dataclass checks them when built),
    ``trainer.max_epochs``, and the tracking names, which become folder names or are shown as names (never a path)."""
    if name in SETTINGS_SECTIONS and isinstance(node, DictConfig):  # (a built dataclass has checked them already)
        OmegaConf.to_object(node)
    if name == "trainer":
        require(node.max_epochs is not None and node.max_epochs > 0, "trainer.max_epochs", node.max_epochs,
                "it must be > 0")
    if name == "tracking":
        for key in ("experiment_name", "run_name"):
            if getattr(node, key) is not None:
                check_name(f"tracking.{key}", getattr(node, key))


def _validate_cnn_targets(cfg: DictConfig) -> None:
    """Layer names and map indices that OIPs and dreams address must exist in the configured CNN."""
    maps = {f"conv{i + 1}": n for i, n in enumerate(cfg.model.conv_filters)}
    allowed = f"the CNN's conv layers are {', '.join(f'{k} ({v} maps)' for k, v in maps.items())}"
    for layer in cfg.oip.layers:
        require(layer in maps, "oip.layers", list(cfg.oip.layers), allowed)
    if cfg.oip.maps is not None:
        fewest = min(maps[layer] for layer in cfg.oip.layers)
        for index in cfg.oip.maps:
            require(0 <= index < fewest, "oip.maps", list(cfg.oip.maps), f"map indices run from 0 to {fewest - 1}")
    for key in ("dream.objective", "dream.layer_objective"):
        spec = _get(cfg, key)
        layer, index = parse_target(spec)
        require(layer in maps, key, spec, allowed)
        if index is not None:
            require(index < maps[layer], key, spec, f"{layer} has maps 0 to {maps[layer] - 1}")
    for spec in cfg.dream.layers or {}:
        layer, index = parse_target(spec)
        require(layer in maps and (index is None or index < maps[layer]), "dream.layers", dict(cfg.dream.layers),
                allowed)
    if cfg.dream.enabled and cfg.dream.image:
        from analysis.dream import load_image

        load_image(cfg.dream.image)  # missing, unreadable or smaller than 28×28: stops before a run is made


def flatten(cfg: DictConfig) -> dict[str, str]:
    """Flat ``section.key`` → string map of every value (a run's params and config tags); an interpolation
    (``${oc.env:X}``) as its text, never its resolved value (:func:`load_experiment` keeps them)."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            out[prefix] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True), "")
    return out


def split_params(flat: dict[str, str], swept: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """``(params, config tags)`` of a flattened config: the few keys of :data:`analysis.tracking.PARAM_KEYS` (and the
    keys a sweep varies) become params — the MLflow UI captions every image card with every param, so they must be
    few and short — and every other value a tag, where MLflow's Difference view and Group by read it too."""
    keys = (*tracking.PARAM_KEYS, *swept)
    return ({k: v for k, v in flat.items() if k in keys}, {k: v for k, v in flat.items() if k not in keys})


def is_config_key(key: str) -> bool:
    """True for a flattened config key (``optim.lr``, ``resume``), false for other tags (``kind``, ``resume.x``)."""
    head, dot, _ = key.partition(".")
    return head in Experiment.__dataclass_fields__ and bool(dot) != (head in SCALAR_KEYS)


def recorded_config(run: Any) -> dict[str, str]:
    """The flattened config a run recorded: its config tags and its params (older runs kept all of it in params)."""
    found = {**run.data.tags, **run.data.params}
    return {k: v for k, v in found.items() if is_config_key(k)}


def to_yaml(cfg: DictConfig) -> str:
    """The config as YAML text (logged as ``config.yaml``): every value resolved except interpolations, which keep
    their text (``${oc.env:X}``), so a secret never reaches the store; loading it resolves them again."""
    return OmegaConf.to_yaml(cfg, resolve=False)
