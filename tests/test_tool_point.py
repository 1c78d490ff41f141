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
    assert parse_tool({"name": FINGERTIPS, "length": 0.3872}).same(FINGERTIPS)
    with pytest.raises(ToolError, match="electric_gripper_fingertips"):
        parse_tool("fingers")
    with pytest.raises(ToolError, match="outside"):
        parse_tool(2.0)


def test_a_tool_mismatch_names_both_tools():
    with pytest.raises(ToolError) as err:
        check_tool("paper", FINGERTIPS, "dataset /tmp/d")
    assert "paper (0.28 m)" in str(err.value) and "electric_gripper_fingertips (0.3872 m)" in str(err.value)
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
    assert back.task.tool == FINGERTIPS and back.net.tool_length == pytest.approx(0.3872)
    q = np.array([[0.1, 0.5, 0.3]])
    omega = torch.as_tensor(normalise(tool_arm(FINGERTIPS).forward(q), q))
    assert float(target_distance(omega, back.net.tool_length)) == pytest.approx(0.0, abs=1e-5)
    assert float(target_distance(omega)) == pytest.approx(0.1072, abs=1e-4)   # the paper's point
    ee = back.net.kinematic_features(omega)[0, :2].numpy()
    np.testing.assert_allclose(ee, tool_arm(FINGERTIPS).forward(q)[0], atol=1e-5)
