"""Recipes and generated flags (reach_core.configs): the shipped YAML recipes resolve to valid
configs, flags override them, the resolved config is saved in the run, and the generated flags
keep the spellings the README, scripts and the shipped models' provenance use."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from reach_core import configs
from reach_core.cli import build_parser, main
from reach_core.control_training import TrainConfig as ControlConfig
from reach_core.end_to_end import FinetuneConfig
from reach_core.perception import TrainConfig as PerceptionConfig

ROOT = Path(__file__).resolve().parents[1]
# pipeline.yaml and pipeline_fast.yaml are plans of `reach pipeline` (tests/test_pipeline.py), not
# training recipes
RECIPES = sorted(p for p in configs.RECIPES.glob("*.yaml") if p.stem.split("_")[0] != "pipeline")


def _config_class(recipe: Path):
    if recipe.stem.startswith("control"):
        return ControlConfig
    if recipe.stem.startswith("end2end"):
        return FinetuneConfig
    return PerceptionConfig


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_the_package_ships_a_recipe_for_every_shipped_model():
    names = {p.stem for p in RECIPES}
    for model in configs.MODELS.glob("*.pt"):
        assert model.stem in names, model.name
    assert {"adapt", "perception_tiny", "control_dof3_stage1"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_resolves_to_a_valid_config(recipe):
    cls = _config_class(recipe)
    values = configs.load_recipe(recipe.stem, cls)
    assert values, recipe.name
    cfg = cls(**values)
    for name, value in values.items():
        assert getattr(cfg, name) == value
        if isinstance(value, str) and value.endswith(".pt"):
            assert Path(value).is_file(), (recipe.name, name, value)   # shipped:NAME resolved


def _flags(command: str) -> dict:
    """{flag: value} of a recorded command line (switches: True)."""
    words = command.split()
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else "--"
            out[w[2:].replace("-", "_")] = True if nxt.startswith("--") else nxt
    return out


@pytest.mark.parametrize("model", ["control_dof1", "control_dof2", "control_dof3", "control_dof3_egreedy",
                                   "perception_adapted", "perception_sim", "perception_sim_dr",
                                   "end2end_ee2ft"])
def test_recipes_reproduce_the_settings_recorded_beside_the_shipped_models(model):
    recorded = _flags(json.loads((configs.MODELS / f"{model}.json").read_text())["command"])
    cls = _config_class(Path(model))
    recipe = configs.load_recipe(model, cls)
    paths = {"out", "real", "adapt_from", "init_from", "perception", "control", "no_progress"}
    for name, value in recorded.items():
        if name == "config":       # a command that names its recipe (scripts/ship_control_models.py)
            assert value == model, (model, value)
            continue
        if name in paths:
            continue
        assert name in recipe, (model, name)
        assert recipe[name] == (True if value is True else type(recipe[name])(value)), (model, name)


def test_flags_override_a_recipe_and_the_run_saves_the_resolved_config(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "perception", "--config", "recipes/perception_tiny.yaml", "--steps", "4",
                 "--eval-every", "2", "--out", str(run), "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["steps"] == 4 and cfg["eval_every"] == 2                  # the flags given
    assert cfg["sim_images"] == 300 and cfg["batch"] == 16 and cfg["width"] == 0.25   # the recipe
    assert cfg["lr"] == PerceptionConfig().lr                             # the defaults
    assert "--config recipes/perception_tiny.yaml" in cfg["command"]
    assert json.loads((run / "metrics.json").read_text())["steps"] == 4


def test_later_recipes_override_earlier_ones():
    args = build_parser().parse_args(["train", "perception", "--config", "perception_sim_dr",
                                      "--config", "perception_tiny"])
    cfg = configs.resolve(PerceptionConfig, args)
    assert cfg.arch == "spatial" and cfg.device == "cpu" and not cfg.online and cfg.steps == 20


def test_a_bad_recipe_fails_with_a_clear_error(tmp_path, capsys):
    (tmp_path / "typo.yaml").write_text("lrr: 0.1\n")
    (tmp_path / "list.yaml").write_text("- lr\n")
    for recipe, words in (("typo.yaml", "unknown setting(s) lrr"), ("list.yaml", "a mapping"),
                          ("missing", "no recipe missing")):
        path = tmp_path / recipe if recipe != "missing" else recipe
        assert main(["train", "perception", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    assert main(["train", "control", "--config", str(tmp_path / "typo.yaml"),
                 "--out", str(tmp_path / "c")]) == 2
    assert "unknown setting(s) lrr" in capsys.readouterr().err


def test_the_generated_flags_keep_the_existing_spellings():
    parse = build_parser().parse_args
    p = parse(["train", "perception", "--batchnorm", "--adapt-part", "features", "--fc-hidden", "16",
               "--sim-limit", "5"])
    cfg = configs.resolve(PerceptionConfig, p)
    assert cfg.batchnorm is True and cfg.adapt_part == "features"
    assert cfg.fc_hidden == 16 and cfg.sim_limit == 5
    assert parse(["train", "perception"]).batchnorm is None               # not given: the recipe decides
    c = configs.resolve(ControlConfig, parse(["train", "control", "--hidden", "64", "32", "--double-dqn",
                                              "false", "--dueling", "--init-from", "x.pt"]))
    assert c.hidden == (64, 32) and c.double_dqn is False and c.dueling and c.init_from == "x.pt"
    e = configs.resolve(FinetuneConfig, parse(["train", "end2end", "--naive", "--dof", "3", "--loss", "mse"]))
    assert e.naive and e.beta == 0.0 and e.dof == 3 and e.loss == "mse"
    for bad in (["train", "perception", "--arch", "resnet"], ["train", "control", "--double-dqn", "maybe"],
                ["train", "end2end", "--dof", "4"]):
        with pytest.raises(SystemExit):
            parse(bad)


def test_every_flag_has_its_help_written_beside_the_field():
    import dataclasses
    for cls in (PerceptionConfig, ControlConfig, FinetuneConfig):
        for f in dataclasses.fields(cls):
            if f.name != "command":
                assert f.metadata.get("help"), (cls.__name__, f.name)


def test_the_shipped_models_provenance_names_their_recipe():
    for info_path in configs.MODELS.glob("*.json"):
        info = json.loads(info_path.read_text())
        assert info.get("recipe") == f"{info_path.stem}.yaml", info_path.name
        assert (configs.RECIPES / info["recipe"]).is_file()


def _ship_control_tool():
    """scripts/ship_control_models.py as a module."""
    spec = importlib.util.spec_from_file_location("ship_control_models",
                                                  ROOT / "scripts" / "ship_control_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolved(command: list[str]) -> dict:
    """The control config a ``reach train control ...`` command line trains with."""
    cfg = dataclasses.asdict(configs.resolve(ControlConfig, build_parser().parse_args(command[1:])))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


@pytest.mark.parametrize("shipped", ["control_dof1", "control_dof2", "control_dof3_egreedy",
                                     "control_dof3 stage 1", "control_dof3"])
def test_the_control_shipping_tool_trains_with_the_config_recorded_beside_each_shipped_model(shipped):
    ship = _ship_control_tool()
    info = json.loads((configs.MODELS / f"{shipped.split()[0]}.json").read_text())
    if shipped == "control_dof3":                                  # stage 2, from stage 1's network
        command, recipe = ship.close_command(info["config"]["init_from"], "runs/x"), ship.CLOSE_RECIPE
    else:
        info = info.get("stage1", info)
        dof, exploration = info["config"]["dof"], info["config"]["exploration"]
        assert ship.name(dof, exploration) == shipped.split()[0]
        command, recipe = ship.command(dof, exploration), ship.recipe(dof, exploration)
    assert command[:5] == ["reach", "train", "control", "--config", recipe]
    assert info.get("recipe", f"{recipe}.yaml") == f"{recipe}.yaml"
    resolved = _resolved(command)
    for name, value in info["config"].items():                     # fields added since keep their defaults
        assert resolved[name] == value, (shipped, name)
