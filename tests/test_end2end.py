"""Tests of the end-to-end module (end_to_end.py): the combined network, its TorchScript export,
the weighted fine-tuning of Eq. 4 (gradients checked against separate backward passes), the
evaluation scenes, and clear errors for bad inputs.  Networks and runs are tiny (seconds)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from reach_core.cli import main as cli_main
from reach_core.control import ControlPolicy, QNetwork
from reach_core.datasets import render_hifi_dataset
from reach_core.end_to_end import (EndToEndError, EndToEndModel, FinetuneConfig, Observer,
                                   finetune, weighted_losses)
from reach_core.perception import ArchConfig, PerceptionModel, PerceptionNet
from reach_core.renderer import render_net_images, sample_scenes
from reach_core.scene import normalise
from reach_core.simulator import TaskConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    torch.manual_seed(0)
    ControlPolicy(QNetwork((32, 32), dueling=True, kinematic=True),
                  TaskConfig(dof=3, hold_only_at_target=True),
                  {"config": {"n_step": 3, "success_bonus": 0.5}}).save(d / "ctrl3.pt")
    ControlPolicy(QNetwork((16,)), TaskConfig(dof=1), {}).save(d / "ctrl1.pt")
    PerceptionModel(PerceptionNet(ArchConfig("paper", width=0.25)), {}).save(d / "perc.pt")
    PerceptionModel(PerceptionNet(ArchConfig("spatial", keypoints=4, fc_hidden=16)), {}).save(
        d / "perc_sp.pt")
    return d


def _images(n=6, seed=0):
    t, q = sample_scenes(n, seed)
    return render_net_images(t, q, supersample=1), normalise(t, q)


def test_set_tta_gives_shift_trained_perception_the_pattern_asked_for(ckpts):
    from reach_core.end_to_end import set_tta
    shifted = PerceptionModel(PerceptionNet(ArchConfig("paper", width=0.25)),
                              {"config": {"online": True, "randomize": 0.5}})
    plain = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    rows = {"shifted": EndToEndModel(shifted, plain.control), "plain": plain}
    set_tta(rows, 1, pattern="cross")
    assert (rows["shifted"].perception.tta, rows["shifted"].perception.tta_pattern) == (1, "cross")
    assert rows["plain"].perception.tta == 0        # trained without camera shifts: none
    with pytest.raises(ValueError, match="tta_pattern"):
        set_tta(rows, 1, pattern="diamond")


def test_reach_eval_end2end_runs_the_perception_nodes_pattern_unless_told_otherwise(ckpts, tmp_path, capsys):
    shifted = PerceptionModel(PerceptionNet(ArchConfig("paper", width=0.25)),
                              {"config": {"online": True, "randomize": 0.5}})
    shifted.save(tmp_path / "shifted.pt")
    base = ["eval", "end2end", "--sim-perception", str(tmp_path / "shifted.pt"), "--control",
            str(ckpts / "ctrl3.pt"), "--trials", "1", "--hifi-trials", "0", "--no-cr", "--no-paper"]
    assert cli_main(base) == 0
    assert "the ring of shifts up to 1 px" in capsys.readouterr().out
    assert cli_main(base + ["--tta-pattern", "square"]) == 0
    assert "the square of shifts up to 1 px" in capsys.readouterr().out


@pytest.mark.parametrize("perc", ["perc.pt", "perc_sp.pt"])
def test_combined_forward_is_perception_then_control(ckpts, perc):
    model = EndToEndModel.from_modules(ckpts / perc, ckpts / "ctrl3.pt")
    x, _ = _images(9)
    perception = PerceptionModel.load(ckpts / perc)
    control = ControlPolicy.load(ckpts / "ctrl3.pt")
    omega = perception.predict(x)
    np.testing.assert_allclose(model.perceive(x), omega, atol=1e-6)
    np.testing.assert_array_equal(model.act(x), control.act(omega))
    q, om, a = model.net(torch.from_numpy(x))
    np.testing.assert_allclose(q.detach().numpy(), control.net(torch.from_numpy(omega)).detach().numpy(),
                               atol=1e-6)
    # test-time augmentation: perceive gives what the perception half's predict gives with it
    model.perception.tta = perception.tta = 1
    np.testing.assert_allclose(model.perceive(x), perception.predict(x), atol=1e-6)
    assert not np.allclose(model.perceive(x), omega)
    square = model.perceive(x)
    model.perception.tta_pattern = perception.tta_pattern = "cross"     # and its pattern of shifts
    np.testing.assert_allclose(model.perceive(x), perception.predict(x), atol=1e-6)
    assert not np.allclose(model.perceive(x), square)


def test_torchscript_export_loads_without_reach_core(ckpts, tmp_path):
    model = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    path = model.export(tmp_path / "m.ts")
    x, _ = _images(11, seed=3)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, json; sys.modules['reach_core'] = None\n"   # any import of reach_core fails
        "import numpy as np, torch\n"
        f"extra = {{'meta.json': ''}}\n"
        f"m = torch.jit.load({str(path)!r}, _extra_files=extra)\n"
        f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "q, omega, a = m(x)\n"
        f"np.save({str(tmp_path / 'a.npy')!r}, a.numpy()); np.save({str(tmp_path / 'q.npy')!r}, q.numpy())\n"
        "print(json.loads(extra['meta.json'])['dof'])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3"
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), model.act(x))
    q = model.net(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), q, atol=1e-5)


def _grads(module):
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                      for p in module.parameters()])


@pytest.mark.parametrize("beta", [0.8, 0.3])
def test_weighted_loss_gradients_eq4(ckpts, beta):
    """Perception gets beta*dLp + (1-beta)*dLq_BN, control gets dLq: checked against separate
    backward passes of Lq and Lp, and with a hook at the bottleneck."""
    model = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    net = model.net
    target = copy.deepcopy(net)
    x, om = _images(8, seed=1)
    x2, om2 = _images(8, seed=2)
    g = torch.Generator().manual_seed(0)
    tb = (torch.from_numpy(x), torch.randint(9, (8,), generator=g), torch.rand(8, generator=g),
          torch.from_numpy(x2), torch.full((8,), 0.99), torch.from_numpy(om2))
    px, py = _images(12, seed=4)
    pb = (torch.from_numpy(px), torch.from_numpy(py))

    def run(b, pbatch, naive):
        net.zero_grad(set_to_none=True)
        seen = {}
        total, lq, lp, omega_hat = weighted_losses(net, target, tb, pbatch, b, naive=naive)
        omega_hat.register_hook(lambda grad: seen.setdefault("bn", grad.clone()))
        total.backward()
        return _grads(net.perception), _grads(net.control), seen["bn"], lq.item(), lp.item()

    gp_w, gc_w, bn_w, lq_w, lp_w = run(beta, pb, naive=False)
    gp_q, gc_q, bn_q, lq_q, _ = run(0.0, None, naive=True)            # Lq alone, unscaled
    # Lp alone: its gradient is what the weighted step adds beyond (1 - beta) * dLq_BN
    net.zero_grad(set_to_none=True)
    lp = 0.5 * ((net.perception(pb[0]) - pb[1]) ** 2).sum(1).mean()
    lp.backward()
    gp_p = _grads(net.perception)
    assert lq_w == pytest.approx(lq_q) and lp_w == pytest.approx(lp.item())
    assert gp_q.abs().sum() > 0 and gp_p.abs().sum() > 0 and gc_q.abs().sum() > 0
    torch.testing.assert_close(gc_w, gc_q, rtol=1e-5, atol=1e-9)                 # control: dLq only
    torch.testing.assert_close(gp_w, beta * gp_p + (1 - beta) * gp_q, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(bn_w, (1 - beta) * bn_q, rtol=1e-5, atol=1e-10)   # hook at the BN
    assert not torch.allclose(gp_w, gp_q)


def test_finetune_runs_and_writes_a_run_folder(ckpts, tmp_path):
    render_hifi_dataset(tmp_path / "hifi", 3, seed=5, progress=False)
    out = tmp_path / "run"
    rc = cli_main(["train", "end2end", "--perception", str(ckpts / "perc.pt"),
                   "--control", str(ckpts / "ctrl3.pt"), "--real", str(tmp_path / "hifi"),
                   "--out", str(out), "--steps", "6", "--task-batch", "8", "--perception-batch", "8",
                   "--learning-starts", "32", "--num-envs", "4", "--eval-every", "3",
                   "--eval-trials", "2", "--sim-pool", "16", "--virtual-targets", "2",
                   "--supersample", "1", "--no-progress"])
    assert rc == 0
    for f in ("model.pt", "model.ts", "best.pt", "metrics.json", "progress.csv", "loss_curves.png"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "weighted" and m["beta"] == 0.8
    assert m["perception_batch"] == {"real": 6, "sim": 2} and m["n_step"] == 3
    assert m["success_bonus"] == 0.5                    # Lq keeps the control run's reward
    assert "reach train end2end" in m["command"]
    ft = EndToEndModel.load(out / "model.pt", dof=3)
    base = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    x, _ = _images(4)
    assert not np.allclose(ft.perceive(x), base.perceive(x))         # the weights moved
    # naive: Lq only, no real data needed
    m2 = finetune(FinetuneConfig(perception=str(ckpts / "perc.pt"), control=str(ckpts / "ctrl3.pt"),
                                 real=None, naive=True, out=str(tmp_path / "naive"), steps=3,
                                 task_batch=8, learning_starts=32, num_envs=4, eval_every=3,
                                 eval_trials=2, supersample=1, success_bonus=0.0),
                  progress=False, log=lambda *_: None)
    assert m2["mode"] == "naive" and m2["beta"] == 0.0 and m2["perception_batch"]["real"] == 0
    assert m2["success_bonus"] == 0.0
    assert [h["step"] for h in m["eval_history"]] == [0, 3, 6]
    assert [h["step"] for h in m2["eval_history"]] == [0, 3]


def test_finetuning_without_the_evaluation_before_evaluates_only_after_updates(ckpts, tmp_path):
    m = finetune(FinetuneConfig(perception=str(ckpts / "perc.pt"), control=str(ckpts / "ctrl3.pt"),
                                real=None, naive=True, out=str(tmp_path / "run"), steps=4, task_batch=8,
                                learning_starts=32, num_envs=4, eval_every=2, eval_trials=2, supersample=1,
                                eval_before=False),
                 progress=False, log=lambda *_: None)
    assert [h["step"] for h in m["eval_history"]] == [2, 4]
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "model.pt").is_file()


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_bad_inputs_fail_before_training(ckpts, tmp_path, capsys):
    base = ["train", "end2end", "--perception", str(ckpts / "perc.pt"), "--control", str(ckpts / "ctrl3.pt"),
            "--no-progress", "--steps", "2"]
    for beta in ("1.5", "-0.1", "nan"):
        assert cli_main(base + ["--beta", beta, "--out", str(tmp_path / "b")]) == 2
        assert "beta must be in [0, 1]" in _one_line(capsys)
    with pytest.raises(ValueError, match="beta"):
        FinetuneConfig(beta=2.0)
    with pytest.raises(ValueError, match="near_target"):
        FinetuneConfig(near_target=1.5)
    # an empty real dataset
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "labels.csv").write_text("image,target_x,target_y,left_s1,left_e1,left_w1\n")
    assert cli_main(base + ["--real", str(empty), "--out", str(tmp_path / "e")]) == 2
    assert "no rows" in _one_line(capsys)
    assert not (tmp_path / "e").exists()
    assert cli_main(base + ["--real", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "not found" in _one_line(capsys)
    # swapped files, wrong DoF
    with pytest.raises(EndToEndError, match="--perception: .* is a control checkpoint"):
        EndToEndModel.from_modules(ckpts / "ctrl3.pt", ckpts / "perc.pt")
    with pytest.raises(EndToEndError, match="--control: .* is a perception checkpoint"):
        EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "perc.pt")
    with pytest.raises(EndToEndError, match="1-DoF controller, a 3-DoF one was asked for"):
        EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl1.pt", dof=3)
    assert cli_main(base[:4] + ["--control", str(ckpts / "ctrl1.pt"), "--no-progress", "--dof", "3",
                                "--out", str(tmp_path / "d")]) == 2
    assert "1-DoF" in _one_line(capsys)
    # wrong sizes: a control network for another input size, a perception head of another width
    c = torch.load(ckpts / "ctrl3.pt", weights_only=True)
    c["arch"]["in_dim"] = 6
    torch.save(c, tmp_path / "c6.pt")
    with pytest.raises(EndToEndError, match="input/output sizes"):
        EndToEndModel.from_modules(ckpts / "perc.pt", tmp_path / "c6.pt")
    p = torch.load(ckpts / "perc.pt", weights_only=True)
    p["model"]["head.weight"] = torch.zeros(6, p["model"]["head.weight"].shape[1])
    p["model"]["head.bias"] = torch.zeros(6)
    torch.save(p, tmp_path / "p6.pt")
    with pytest.raises(EndToEndError, match="--perception: .*do not fit"):
        EndToEndModel.from_modules(tmp_path / "p6.pt", ckpts / "ctrl3.pt")
    # not a checkpoint at all, and a module checkpoint where a combined one is expected
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EndToEndError, match="cannot read checkpoint"):
        EndToEndModel.from_modules(tmp_path / "junk.pt", ckpts / "ctrl3.pt")
    with pytest.raises(EndToEndError, match="not a reach end-to-end checkpoint.*module checkpoint"):
        EndToEndModel.load(ckpts / "ctrl3.pt")
    model = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    with pytest.raises(ValueError, match=r"\(B, 84, 84\)"):
        model.act(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="float32"):
        model.act(np.zeros((2, 84, 84), np.uint8))


def test_observer_scenes_change_the_image():
    from reach_core.simulator import ReachEnv
    env = ReachEnv(3, TaskConfig(), seed=0, auto_reset=False)
    imgs = {}
    for scene in Observer.SCENES:
        obs = Observer(lambda x: np.zeros((len(x), 5), np.float32), "sim", scene, seed=1, supersample=1)
        obs._setup(env)
        imgs[scene] = obs.images(env.target, env.q, np.arange(3))
    normal = imgs["normal"]
    target_px = normal.min()   # the target disc is the darkest grey of the simulator's image
    assert not np.allclose(imgs["no-target"], normal)
    changed = {k: (np.abs(imgs[k] - normal) > 1e-3).sum() for k in ("two-targets", "no-target")}
    assert changed["two-targets"] > changed["no-target"] * 0.5
    assert not np.allclose(imgs["occluder"], normal)
    del target_px
    with pytest.raises(ValueError, match="scene must be"):
        Observer(None, "sim", "fog")


def test_evaluate_rows_no_revisit_runs_the_rule_on_every_row():
    """A controller that dithers on e1 (test_control_no_revisit._LoopNet): the greedy rows stall in a
    2-cycle until the step limit, the no-revisit rows move on (other final distances)."""
    from test_control_no_revisit import _LoopNet

    from reach_core.end_to_end import evaluate_rows
    task = TaskConfig(dof=3, max_steps=30)
    control = ControlPolicy(_LoopNet(switch_q1=1.0), task, {})
    greedy = evaluate_rows({"CR": control}, task, 12, seed=5)["CR"][0]
    rule = evaluate_rows({"CR": control}, task, 12, seed=5, no_revisit=True)["CR"][0]
    assert greedy.success_rate < 0.2                                # (a start near its target aside)
    assert np.abs(rule.final_distance_m - greedy.final_distance_m).max() > 0.05


def test_load_module_takes_either_half_of_a_combined_checkpoint(ckpts, tmp_path):
    from reach_core.control import CheckpointError
    from reach_core.end_to_end import load_module
    model = EndToEndModel.from_modules(ckpts / "perc.pt", ckpts / "ctrl3.pt")
    model.save(tmp_path / "e2e.pt")
    perc = load_module(tmp_path / "e2e.pt", "perception")
    ctrl = load_module(tmp_path / "e2e.pt", "control")
    x, _ = _images(4)
    np.testing.assert_allclose(perc.predict(x), model.perceive(x), atol=1e-6)
    om = model.perceive(x)
    assert list(ctrl.act(om)) == list(model.act_omega(om)) and ctrl.task.dof == 3
    assert isinstance(load_module(ckpts / "perc.pt", "perception"), PerceptionModel)
    assert isinstance(load_module(ckpts / "ctrl3.pt", "control"), ControlPolicy)
    with pytest.raises(CheckpointError):
        load_module(ckpts / "perc.pt", "control")          # a module of the other kind
    with pytest.raises(CheckpointError, match="DoF"):
        load_module(tmp_path / "e2e.pt", "control", dof=1)
