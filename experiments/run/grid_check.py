"""Checking the configs of a sweep's points at a cost per distinct projection of the grid, not per point
(:class:`GridChecker`): each point gets exactly the verdict :func:`~experiments.run.config.load_experiment` gives it."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, ValueNode
from omegaconf.errors import OmegaConfBaseException

from experiments.run.config import (SAFE_LOADER, check_override_value, check_section, load_experiment, one_line,
                                    validate_across)
from latentdream.errors import InputError

# Sections whose values meet in a rule of :func:`validate` (the model and its data, the CNN's layers and the OIP and
# dream targets) or name the experiment: swept together, they are checked together.
COUPLED_SECTIONS = frozenset({"model", "data", "oip", "dream", "name", "defaults"})


class GridChecker:
    """Check the configs of a sweep's points at a cost per *distinct projection*, not per point.

    Every rule reads either one section (:func:`check_section`, and ``check`` — the trainer check — the trainer
    section without its seed) or the coupled sections (:data:`COUPLED_SECTIONS`) together. So a point's config is
    valid exactly when, for each group of sections (the coupled group, each other section on its own), the config
    with that group's swept values — the rest as in the base — is valid. A section's swept scalars are converted by
    its typed nodes and its dataclass rebuilt with them (its own rules; lists and nested keys merge through
    OmegaConf); the coupled group then runs the rules across sections on the built dataclasses, and a change of
    model or data kind loads the whole config (:func:`load_experiment`). A point then costs a few dictionary
    lookups, a distinct projection about 0.1 ms. A value holding an interpolation (``${...}`` can reach across
    sections) is loaded point by point instead.

    :param swept: the keys the grid varies; :param check: run on each distinct trainer projection (may raise).
    """

    def __init__(self, experiment: str, swept: tuple[str, ...], check: Any = None) -> None:
        self.experiment, self.swept, self.check = experiment, frozenset(swept), check or (lambda cfg: None)
        self._loaded: dict[tuple, Any] = {}
        self._checked: set[tuple] = set()
        self._first = True

    def _full(self, overrides: list[str]) -> DictConfig:
        key = tuple(overrides)
        if key not in self._loaded:
            cfg = load_experiment(self.experiment, overrides)
            self._checked_once(cfg, [o for o in overrides if o.startswith("trainer.")])
            self._loaded[key] = cfg
        return self._loaded[key]

    def _checked_once(self, cfg: Any, trainer_items: list[str]) -> None:
        key = tuple(sorted(o for o in trainer_items if not o.startswith("trainer.seed=")))
        if key not in self._checked:
            self.check(cfg)
            self._checked.add(key)

    def _section(self, base: DictConfig, group: str, items: list[str]) -> dict[str, Any]:
        key = (group, tuple(items))
        if key not in self._loaded:
            for item in items:
                check_override_value(item)
            try:
                node = self._fast_section(base, group, items)
                if node is None:  # lists, nested keys, the trainer check: through OmegaConf
                    node = OmegaConf.merge(base[group], OmegaConf.from_dotlist([i.split(".", 1)[1] for i in items]))
                check_section(group, node)
            except OmegaConfBaseException as err:
                full = getattr(err, "full_key", None) or "?"
                err.full_key = full if full.startswith(f"{group}.") else f"{group}.{full}"
                raise InputError(one_line(err)) from None
            if group == "trainer" and isinstance(node, DictConfig):
                self._checked_once(_PointView(base, {group: {group: node}}), items)
            self._loaded[key] = {group: node}
        return self._loaded[key]

    def _fast_section(self, base: DictConfig, group: str, items: list[str]) -> Any:
        """The section's dataclass with the scalar values of ``items`` (each converted by its typed node,
        as a merge would; ``dataclasses.replace`` runs the section's rules), or None where that does not apply."""
        section_node = base[group]
        values = {}
        for item in items:
            key, _, text = item.partition("=")
            leaf = key.split(".", 1)[1]
            child = section_node._get_node(leaf) if "." not in leaf and leaf in section_node else None
            if not isinstance(child, ValueNode):
                return None
            if group == "trainer" and leaf != "seed":
                return None  # the trainer check needs the real section
            if "???" in text or "\\" in text:
                return None  # a missing-value marker or an escape: the merge decodes them
            try:  # the typed node converts as a merge would, without being copied or changed
                values[leaf] = child.validate_and_convert(yaml.load(text, Loader=SAFE_LOADER))
            except OmegaConfBaseException:
                return None  # the merge says what is wrong, naming the key
        return dataclasses.replace(self._instance(base, group), **values)

    def _coupled_instances(self, base: DictConfig) -> dict[str, Any]:
        key = ("instances", id(base))
        if key not in self._loaded:
            self._loaded[key] = {name: self._instance(base, name) for name in sorted(COUPLED_SECTIONS & set(base))}
        return self._loaded[key]

    def _instance(self, base: DictConfig, group: str) -> Any:
        """Section ``group`` of ``base`` built once as its dataclass (attribute reads at Python speed), or the
        config node itself where the section has no dataclass."""
        key = ("instance", id(base), group)
        if key not in self._loaded:
            node = base._get_node(group)
            structured = isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node))
            self._loaded[key] = OmegaConf.to_object(node) if structured else base[group]
        return self._loaded[key]

    def load(self, overrides: list[str]) -> Any:
        """The config of the point given by ``overrides`` (the fixed ones and the point's swept ``key=value``\\ s),
        checked: the first point's as a real config, later ones as a view whose sections are exact.

        :raises InputError: the first rule the point breaks.
        """
        swept = [o for o in overrides if o.partition("=")[0] in self.swept]
        fixed = [o for o in overrides if o.partition("=")[0] not in self.swept]
        if self._first or any("${" in o for o in swept):
            self._first = False
            return self._full(overrides)
        groups: dict[str, list[str]] = {}
        for item in swept:
            head = item.partition("=")[0].split(".")[0]
            groups.setdefault("coupled" if head in COUPLED_SECTIONS else head, []).append(item)
        base = self._full(fixed)
        by_group = {group: (self._coupled(base, fixed, items) if group == "coupled"
                            else self._section(base, group, items) if isinstance(base.get(group), DictConfig)
                            else self._full([*fixed, *items])) for group, items in groups.items()}
        return _PointView(base, by_group)

    def _coupled(self, base: DictConfig, fixed: list[str], items: list[str]) -> Any:
        """The coupled sections with their swept values: each section built on its own (its rules), then the rules
        across them (:func:`validate_across`) on the combination; a change of model or data kind, or of the
        experiment's name, loads the whole config."""
        key = ("coupled", tuple(items))
        if key in self._loaded:
            return self._loaded[key]
        keys = [item.partition("=")[0] for item in items]
        if any(k in ("model.name", "data.name") or "." not in k for k in keys):
            self._loaded[key] = self._full([*fixed, *items])
            return self._loaded[key]
        sections: dict[str, Any] = {}
        for name in dict.fromkeys(k.split(".")[0] for k in keys):
            sections.update(self._section(base, name, [i for i in items if i.startswith(f"{name}.")]))
        # the rules read the sections the point does not sweep as built dataclasses: a thousand points' reads
        # through OmegaConf would cost more than everything else here together
        validate_across(_PointView(self._coupled_instances(base), {"coupled": sections}, fallback=True))
        self._loaded[key] = view = _PointView(base, {"coupled": sections}, fallback=True)
        return view


class _PointView:
    """A point's config from its projections: ``view.<section>`` is the section of the projection that swept it."""

    def __init__(self, base: DictConfig, by_group: dict[str, Any], fallback: bool = False) -> None:
        self._base, self._by_group, self._fallback = base, by_group, fallback

    def __getattr__(self, section_name: str) -> Any:
        if section_name.startswith("_"):
            raise AttributeError(section_name)
        group = "coupled" if section_name in COUPLED_SECTIONS else section_name
        found = self._by_group.get(group, self._base)
        if self._fallback and section_name not in found:  # a coupled section the point does not sweep
            return self._base[section_name]
        return found[section_name]

    __getitem__ = __getattr__
