"""Configs as dataclasses, recipes as YAML files, command-line flags generated from the fields.

A training command's settings are one dataclass (perception ``TrainConfig``, ``FinetuneConfig``,
control ``TrainConfig``) whose fields are declared with :func:`option`: the default and the help
text side by side, written once.  :func:`add_config_args` turns the fields into argparse flags
(``adapt_from`` -> ``--adapt-from``; a bool that defaults to False is a switch, one that defaults
to True takes ``BOOL``; a tuple takes one or more values; ``choices`` are checked), every flag
defaulting to None so that the command knows which were given.  ``--config RECIPE`` (repeatable)
reads YAML recipes -- ``{field: value}`` files shipped in ``reach_core/recipes/`` -- and
:func:`resolve` builds the config from the defaults, then the recipes in order, then the flags
given: flags override the files, and the command saves the resolved config in its run folder.

Which library and why: a small helper of our own (argparse and PyYAML, both already
dependencies), not tyro or draccus, although both install here for Python 3.11 (tyro 1.0.17;
draccus 0.11.6 with five dependencies).  Both build and own the whole parser (``tyro.cli``,
``draccus.parse``) and spell flags their own way (``--no-batchnorm``, nested ``--arch.width``,
``--hidden 400 300`` vs ``--hidden.0``), while ``reach`` is one argparse entry point in which each
module registers its subcommands, whose existing flags (``--batchnorm``, ``--double-dqn BOOL``,
``--hidden 400 300``) scripts, the README and the shipped models' provenance use as they are.

A recipe value ``shipped:NAME`` names a model shipped in ``reach_core/models/`` (e.g.
``adapt_from: shipped:perception_sim_dr.pt``) and resolves to its path wherever the command runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RECIPES = PACKAGE / "recipes"
MODELS = PACKAGE / "models"
SHIPPED = "shipped:"


def option(default, help: str, *, choices=None, metavar: str | None = None):
    """A dataclass field with its command-line help (and allowed ``choices``) beside its default."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar})


def _truth(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _base_type(hint):
    """``int | None`` -> int; other hints as they are."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return typing.get_origin(hint) or hint


def flag_name(name: str) -> str:
    """The flag of a field: ``adapt_from`` -> ``--adapt-from``."""
    return "--" + name.replace("_", "-")


def add_config_args(parser: argparse.ArgumentParser, cls, recipes: bool = True) -> None:
    """One flag per field of ``cls`` declared with :func:`option` (fields without help are not
    flags), plus ``--config RECIPE`` when ``recipes``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        kind = _base_type(hints[f.name])
        kw = {"default": None, "help": f"{meta['help']} (default: {_show(f.default)})"}
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        if meta.get("metavar"):
            kw["metavar"] = meta["metavar"]
        if kind is bool and f.default is not True:   # --flag, and --no-flag against a recipe's true
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is bool:
            kw.update(type=_truth, metavar="BOOL")
        elif kind is tuple:
            kw.update(type=int, nargs="+")
        else:
            kw["type"] = kind
        parser.add_argument(flag_name(f.name), **kw)
    if recipes:
        names = ", ".join(p.stem for p in sorted(RECIPES.glob("*.yaml")))
        parser.add_argument("--config", action="append", metavar="RECIPE", default=None,
                            help="YAML recipe of settings ({field: value}); repeatable, later files and "
                                 f"then the flags given override earlier ones. Shipped: {names}")


def _show(value) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def recipe_path(name: str | Path) -> Path:
    """A recipe file: ``name`` as a path, else the shipped ``reach_core/recipes/NAME[.yaml]``."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    names = ", ".join(p.name for p in sorted(RECIPES.glob("*.yaml")))
    raise ValueError(f"--config: no recipe {name} (shipped recipes: {names})")


def load_recipe(name: str | Path, cls) -> dict:
    """The settings of a YAML recipe for ``cls``, checked against its fields (dashes or
    underscores in the keys; ``shipped:NAME`` values resolved)."""
    import yaml

    path = recipe_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: a recipe is a mapping of settings, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"--config {path}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}")
    return {k: _shipped(v) for k, v in values.items()}


def _shipped(value):
    if isinstance(value, str) and value.startswith(SHIPPED):
        return str(MODELS / value[len(SHIPPED):])
    if isinstance(value, list):
        return tuple(value)
    return value


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` whose flags were given (not None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def resolve(cls, args: argparse.Namespace, **fixed):
    """``cls`` from its defaults, the recipes of ``--config`` in order, the flags given, then
    ``fixed``."""
    values = {}
    for name in getattr(args, "config", None) or []:
        values.update(load_recipe(name, cls))
    values.update(given(args, cls))
    values.update(fixed)
    return cls(**values)
