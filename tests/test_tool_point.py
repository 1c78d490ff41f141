"""The tool point: a parameter (per gripper) carried through kinematics, renderers, training,
datasets and the ROS nodes (docs/tool_point.md)."""
import numpy as np
import pytest
import torch

from reach_core.kinematics import (BAXTER_LEFT, TARGET_BOX, TOOL_PRESETS, ToolError, check_tool,
                                   parse_tool, tool_arm)
from reach_core.simulator import ReachEnv, TaskConfig

FINGERTIPS = "electric_gripper_fingertips"


def test_the_fingertip_tool_moves_the_tool_point_by_the_offset_along_the_last_link():
    q = BAXTER_LEFT.sample_joints(np.random.default_rng(0), 50)
    paper, tips = BAXTER_LEFT.link_points(q), tool_arm(FINGERTIPS).link_points(q)
    np.testing.assert_allclose(tips[:, :3], paper[:, :3])              # shoulder, elbow, wrist
    along = (paper[:, 3] - paper[:, 2]) / np.linalg.norm(paper[:, 3] - paper[:, 2], axis=-1)[:, None]
    offset = TOOL_PRESETS[FINGERTIPS] - TOOL_PRESETS["paper"]
    np.testing.assert_allclose(tips[:, 3], paper[:, 3] + offset * along, atol=1e-12)
    np.testing.assert_allclose(tool_arm(FINGERTIPS).forward(q), tips[:, 3])


def test_the_paper_tool_is_the_arm_of_the_shipped_models():
    assert tool_arm("paper") is BAXTER_LEFT and tool_arm(None) is BAXTER_LEFT
    assert tool_arm(0.28) is BAXTER_LEFT and TaskConfig().tool == "paper"


def test_a_tool_is_a_preset_or_a_length_in_metres():
    assert parse_tool("0.35").length == 0.35 and tool_arm("0.35").tool_length == 0.35
    assert parse_tool("0.28").name == "paper" and parse_tool(0.3907).name == FINGERTIPS
    assert parse_tool({"name": FINGERTIPS, "length": 0.3907}).same(FINGERTIPS)
    with pytest.raises(ToolError, match="electric_gripper_fingertips"):
        parse_tool("fingers")
    with pytest.raises(ToolError, match="outside"):
        parse_tool(2.0)


def test_a_tool_mismatch_names_both_tools():
    with pytest.raises(ToolError) as err:
        check_tool("paper", FINGERTIPS, "dataset /tmp/d")
    assert "paper (0.28 m)" in str(err.value) and "electric_gripper_fingertips (0.3907 m)" in str(err.value)
    assert check_tool("paper", 0.28, "x").name == "paper"


def test_the_task_with_the_fingertip_tool_succeeds_by_the_fingertips_inside_the_omega_square():
    env = ReachEnv(400, TaskConfig(tool=FINGERTIPS), seed=3)
    assert env.arm.reach > TARGET_BOX                   # the tool reaches past the square ...
    assert np.all(np.abs(env.target) <= TARGET_BOX)     # ... its targets stay inside
    np.testing.assert_allclose(env.target, env.arm.forward(env.q_star))
    np.testing.assert_allclose(env.distance(), np.linalg.norm(
        tool_arm(FINGERTIPS).forward(env.q) - env.target, axis=-1))
    assert np.any(np.linalg.norm(env.target, axis=-1) > BAXTER_LEFT.reach)  # out of paper's reach


def test_the_torch_environment_keeps_a_long_tools_targets_inside_the_omega_square():
    from reach_core.control_vec import TorchReachEnv
    env = TorchReachEnv(400, TaskConfig(tool=FINGERTIPS), seed=1)
    assert float(env.target.abs().max()) <= TARGET_BOX
    np.testing.assert_allclose(env.forward(env.q_star).numpy(), env.target.numpy(), atol=1e-6)
    np.testing.assert_allclose(env.forward(env.q).numpy(),
                               tool_arm(FINGERTIPS).forward(env.q.double().numpy()), atol=1e-5)


def test_a_control_model_keeps_its_tool_and_its_kinematic_features_use_it(tmp_path):
    from reach_core.control import ControlPolicy, QNetwork, target_distance
    from reach_core.scene import normalise
    task = TaskConfig(tool=FINGERTIPS, hold_only_at_target=True)
    pol = ControlPolicy(QNetwork(hidden=(8,), kinematic=True, tool_length=task.arm.tool_length), task, {})
    pol.save(tmp_path / "m.pt")
    back = ControlPolicy.load(str(tmp_path / "m.pt"))
    assert back.task.tool == FINGERTIPS and back.net.tool_length == pytest.approx(0.3907)
    q = np.array([[0.1, 0.5, 0.3]])
    omega = torch.as_tensor(normalise(tool_arm(FINGERTIPS).forward(q), q))
    assert float(target_distance(omega, back.net.tool_length)) == pytest.approx(0.0, abs=1e-5)
    assert float(target_distance(omega)) == pytest.approx(0.1107, abs=1e-4)   # the paper's point
    ee = back.net.kinematic_features(omega)[0, :2].numpy()
    np.testing.assert_allclose(ee, tool_arm(FINGERTIPS).forward(q)[0], atol=1e-5)


# ----------------------------------------------------------------------------- renderers
Q_DOWN = np.array([0.3, 0.8, 0.5])        # the hand well inside the crop
FAR_TARGET = np.array([-0.8, 0.8])        # the target disc far from the hand


def _extension(camera, to_px):
    """Pixels of the paper's end-effector and of the fingertips in the scene Q_DOWN."""
    return to_px(BAXTER_LEFT.forward(Q_DOWN)), to_px(tool_arm(FINGERTIPS).forward(Q_DOWN))


def _assert_drawn_further_out(paper, tips, start, end, radius):
    """The images differ, only within ``radius`` px of the segment start -> end (the tool's
    extension), and also near its far end."""
    diff = np.abs(tips.astype(np.float64) - paper.astype(np.float64))
    diff = diff.max(axis=-1) if diff.ndim == 3 else diff
    v, u = np.nonzero(diff > 0.1 * diff.max())
    assert len(u) > 0
    p = np.stack([u + 0.5, v + 0.5], -1)
    seg = end - start
    t = np.clip(((p - start) @ seg) / (seg @ seg), 0, 1)
    dist = np.linalg.norm(p - (start + t[:, None] * seg), axis=-1)
    assert dist.max() <= radius, dist.max()
    assert t.max() > 0.8                                  # the gripper reaches the fingertips


def test_the_simple_renderer_draws_the_gripper_to_the_fingertips():
    from reach_core.renderer import render, render_net_images
    from reach_core.scene import DEFAULT_CAMERA as cam
    start, end = _extension(cam, cam.to_pixels)
    _assert_drawn_further_out(render(FAR_TARGET, Q_DOWN), render(FAR_TARGET, Q_DOWN, tool=FINGERTIPS),
                              start, end, radius=(0.010 + 0.014) * cam.px_per_m + 2)
    start, end = _extension(cam, cam.to_net_pixels)
    for s in (None, 3):
        _assert_drawn_further_out(render_net_images(FAR_TARGET, Q_DOWN, supersample=s),
                                  render_net_images(FAR_TARGET, Q_DOWN, supersample=s, tool=FINGERTIPS),
                                  start, end, radius=2.5)


def test_the_randomized_renderer_draws_the_gripper_to_the_fingertips():
    from reach_core.randomized_renderer import render
    from reach_core.scene import DEFAULT_CAMERA as cam
    t, q = torch.as_tensor(FAR_TARGET[None]), torch.as_tensor(Q_DOWN[None])
    start, end = _extension(cam, cam.to_net_pixels)
    _assert_drawn_further_out(render(t, q)[0].numpy(), render(t, q, tool=FINGERTIPS)[0].numpy(),
                              start, end, radius=2.5)


def test_the_hifi_renderer_draws_the_gripper_to_the_fingertips():
    from reach_core.hifi_renderer import nominal_ee_pixels, render_hifi
    paper = render_hifi(FAR_TARGET, Q_DOWN, variation=0.0, noise=0.0)
    tips = render_hifi(FAR_TARGET, Q_DOWN, variation=0.0, noise=0.0, tool=FINGERTIPS)
    _assert_drawn_further_out(paper, tips, nominal_ee_pixels(Q_DOWN),
                              nominal_ee_pixels(Q_DOWN, tool=FINGERTIPS), radius=12)


def test_randomized_scenes_of_a_long_tool_put_targets_at_its_tool_point_inside_the_square():
    from reach_core.randomized_renderer import sample_scenes
    gen = torch.Generator().manual_seed(0)
    target, q = sample_scenes(2000, gen, tool=FINGERTIPS)
    assert float(target.abs().max()) <= TARGET_BOX
    assert float(target.norm(dim=-1).max()) > BAXTER_LEFT.reach      # where the paper's hand can't go


# ----------------------------------------------------------------------------- datasets
def test_a_dataset_records_its_tool_and_a_run_with_another_tool_refuses_it_naming_both(tmp_path):
    import json

    from reach_core.datasets import DatasetError, load_dataset, load_unlabelled, render_sim_dataset
    out = render_sim_dataset(tmp_path / "tips", 3, seed=1, tool=FINGERTIPS, progress=False)
    assert json.loads((out / "dataset.json").read_text())["tool"] == {"name": FINGERTIPS, "length": 0.3907}
    with pytest.raises(DatasetError) as err:
        load_dataset(out, verbose=False)                                   # a paper run
    assert FINGERTIPS in str(err.value) and "paper" in str(err.value) and str(out) in str(err.value)
    with pytest.raises(DatasetError, match="paper"):
        load_unlabelled(out)
    ds = load_dataset(out, verbose=False, tool=FINGERTIPS)
    assert ds.tool == FINGERTIPS and len(ds) == 3
    assert load_dataset(out, verbose=False, tool=None).tool == FINGERTIPS   # reach data check


def test_a_dataset_without_a_tool_is_the_papers(tmp_path):
    import json

    from reach_core.datasets import DatasetError, load_dataset, render_sim_dataset
    out = render_sim_dataset(tmp_path / "old", 2, seed=1, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta.pop("tool")["name"] == "paper"
    (out / "dataset.json").write_text(json.dumps(meta))                    # as written before tools
    assert load_dataset(out, verbose=False).tool == "paper"
    with pytest.raises(DatasetError, match="electric_gripper_fingertips"):
        load_dataset(out, verbose=False, tool=FINGERTIPS)


def test_virtual_targets_of_a_fingertip_dataset_are_fingertip_points(tmp_path):
    from reach_core.datasets import load_dataset, render_hifi_dataset
    from reach_core.scene import denormalise
    out = render_hifi_dataset(tmp_path / "h", 2, seed=2, tool=FINGERTIPS, progress=False)
    ds = load_dataset(out, virtual_targets=40, verbose=False, tool=FINGERTIPS)
    target, _ = denormalise(ds.omega)
    assert np.abs(target).max() <= TARGET_BOX + 1e-6
    assert np.linalg.norm(target, axis=-1).max() > BAXTER_LEFT.reach      # beyond the paper's hand


# ----------------------------------------------------------------------------- training
def _tiny_perception(tmp_path, name, **kw):
    from reach_core import perception as P
    base = dict(out=str(tmp_path / name), sim_images=64, supersample=1, steps=2, batch=8, warmup=1,
                eval_every=2, checkpoint_every=2, val_sim=8, width=0.25)
    return P.TrainConfig(**{**base, **kw})


def test_a_perception_run_records_its_tool_and_refuses_a_model_or_dataset_of_another(tmp_path):
    import json

    from reach_core import perception as P
    from reach_core.datasets import DatasetError, render_hifi_dataset
    P.train(_tiny_perception(tmp_path, "tips", tool=FINGERTIPS), progress=False)
    tips = P.PerceptionModel.load(tmp_path / "tips" / "model.pt")
    assert tips.tool == FINGERTIPS
    assert json.loads((tmp_path / "tips" / "config.json").read_text())["tool"] == FINGERTIPS
    with pytest.raises(ToolError, match="perception model .*electric_gripper_fingertips.*paper"):
        P.train(_tiny_perception(tmp_path, "a", adapt_from=str(tmp_path / "tips" / "model.pt")),
                progress=False)
    real = render_hifi_dataset(tmp_path / "real", 2, seed=0, progress=False)     # a paper dataset
    with pytest.raises(DatasetError, match="paper.*electric_gripper_fingertips"):
        P.train(_tiny_perception(tmp_path, "b", tool=FINGERTIPS, real=str(real),
                                 adapt_from=str(tmp_path / "tips" / "model.pt")), progress=False)
    assert P.PerceptionModel.load(P.__file__.rsplit("/", 2)[0] + "/models/perception_sim.pt").tool == "paper"


def test_control_training_with_a_tool_records_it_and_fine_tuning_refuses_another(tmp_path):
    from reach_core.control import ControlPolicy
    from reach_core.control_training import TrainConfig, train
    small = dict(total_steps=64, num_envs=8, learning_starts=16, batch_size=8, hidden=(8,),
                 eval_every=64, eval_trials=4, checkpoint_every=64, max_steps=5)
    train(TrainConfig(tool=FINGERTIPS, **small), str(tmp_path / "c"), progress=False, log=lambda *a: None)
    model = ControlPolicy.load(str(tmp_path / "c" / "model.pt"))
    assert model.task.tool == FINGERTIPS
    import json
    assert json.loads((tmp_path / "c" / "config.json").read_text())["tool"] == FINGERTIPS
    with pytest.raises(ToolError, match="electric_gripper_fingertips.*paper"):
        train(TrainConfig(init_from=str(tmp_path / "c" / "model.pt"), **small), str(tmp_path / "d"),
              log=lambda *a: None, progress=False)


def test_bags_and_lerobot_folders_carry_the_tool(tmp_path):
    import json

    from reach_core.bags import dataset_to_bag
    from reach_core.cli import main as reach
    from reach_core.datasets import render_sim_dataset
    src = render_sim_dataset(tmp_path / "ds", 3, seed=2, tool=FINGERTIPS, progress=False)
    assert reach(["data", "export-lerobot", str(src), "--out", str(tmp_path / "lr")]) == 0
    assert reach(["data", "import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "back")]) == 0
    assert json.loads((tmp_path / "back" / "dataset.json").read_text())["tool"]["name"] == FINGERTIPS
    dataset_to_bag(src, tmp_path / "bag")
    assert reach(["data", "from-bag", str(tmp_path / "bag"), "--out", str(tmp_path / "fb"),
                  "--target-topic", "/reach/target", "--tool", FINGERTIPS]) == 0
    assert json.loads((tmp_path / "fb" / "dataset.json").read_text())["tool"]["name"] == FINGERTIPS
    assert reach(["data", "from-bag", str(tmp_path / "bag"), "--out", str(tmp_path / "fb2"),
                  "--target-topic", "/reach/target"]) == 0
    assert json.loads((tmp_path / "fb2" / "dataset.json").read_text())["tool"]["name"] == "paper"


@pytest.mark.parametrize("tool", [FINGERTIPS, "0.35"])
def test_the_proxy_renderer_draws_another_tool_than_the_papers(tool):
    """(Where the tips end for each tool: tests/test_proxy_renderer.py.)"""
    from reach_core import proxy_renderer as pr
    q = np.array([0.4, 0.8, -0.3])
    frames = [pr.render_proxy(None, q, seed=5, target_mode="none", jitter=0.0, tool=t)
              for t in ("paper", tool)]
    assert np.any(frames[0] != frames[1])


def test_the_paper_tool_draws_the_same_scenes_as_before_tools():
    """The default tool redraws nothing: the random streams (and so every seeded figure) are the
    ones of Algorithm 1 as written before the tool point existed."""
    from reach_core.renderer import sample_scenes
    rng = np.random.default_rng(7)
    q = BAXTER_LEFT.sample_joints(rng, 500)
    q_star = BAXTER_LEFT.sample_joints(rng, 500)
    target, q_new = sample_scenes(500, seed=7)
    np.testing.assert_array_equal(q_new, q)
    np.testing.assert_array_equal(target, BAXTER_LEFT.forward(q_star))
    env = ReachEnv(300, TaskConfig(), seed=3)
    rng = np.random.default_rng(3)
    lo, hi = BAXTER_LEFT.joint_limits[:, 0], BAXTER_LEFT.joint_limits[:, 1]
    q, q_star = rng.uniform(lo, hi, (300, 3)), rng.uniform(lo, hi, (300, 3))
    np.testing.assert_array_equal(env.q, q)
    np.testing.assert_array_equal(env.target, BAXTER_LEFT.forward(q_star))


def test_end_to_end_fine_tuning_refuses_modules_of_another_tool(tmp_path):
    from reach_core.control import ControlPolicy, QNetwork
    from reach_core.end_to_end import EndToEndModel
    from reach_core.end_to_end.model import EndToEndError
    from reach_core.perception import ArchConfig, PerceptionModel, PerceptionNet
    PerceptionModel(PerceptionNet(ArchConfig(width=0.25)), {}).save(tmp_path / "p.pt")
    ControlPolicy(QNetwork(hidden=(8,)), TaskConfig(), {}).save(tmp_path / "c.pt")
    ControlPolicy(QNetwork(hidden=(8,)), TaskConfig(tool=FINGERTIPS), {}).save(tmp_path / "tips.pt")
    assert EndToEndModel.from_modules(tmp_path / "p.pt", tmp_path / "c.pt").task.tool == "paper"
    with pytest.raises(EndToEndError, match="tips.pt is for the tool electric_gripper_fingertips"):
        EndToEndModel.from_modules(tmp_path / "p.pt", tmp_path / "tips.pt")
