"""Tests of the ONNX export of the combined network (reach_core.end_to_end.export,
``reach export end2end``): ONNX Runtime gives the torch network's outputs, test-time
augmentation included, without torch or reach_core; bad input is a clear error.  Tiny networks."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from reach_core.cli import main as cli_main
from reach_core.control import ControlPolicy, QNetwork
from reach_core.end_to_end import EndToEndModel, OnnxEndToEnd, OnnxPerception, export_onnx
from reach_core.perception import ArchConfig, PerceptionModel, PerceptionNet
from reach_core.renderer import render_net_images, sample_scenes
from reach_core.simulator import TaskConfig

torch.set_num_threads(1)
SHIFTED = {"config": {"online": True, "randomize": 0.5}}     # trained with camera shifts: tta applies


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """A tiny combined network (spatial perception trained with camera shifts) and its ONNX file."""
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    ControlPolicy(QNetwork((32, 32), dueling=True, kinematic=True),
                  TaskConfig(dof=3, hold_only_at_target=True), {}).save(d / "ctrl.pt")
    net = PerceptionNet(ArchConfig("spatial", keypoints=4, fc_hidden=16))
    with torch.no_grad():   # sharp keypoints: each shifted copy's estimate differs
        net.features[-2].weight.mul_(50)
    PerceptionModel(net, SHIFTED).save(d / "perc.pt")
    model = EndToEndModel.from_modules(d / "perc.pt", d / "ctrl.pt")
    return model, export_onnx(model, d / "e2e.onnx", tta=1)


def _images(n, seed=0):
    t, q = sample_scenes(n, seed)
    return render_net_images(t, q, supersample=1)


def test_onnx_outputs_match_the_torch_network_with_test_time_augmentation(onnx_model):
    model, path = onnx_model
    x = _images(7, seed=3)
    q, omega, action = OnnxEndToEnd(path).run(x)
    model.perception.tta, model.perception.tta_pattern = 1, "ring"   # export_onnx's default, the node's
    want_omega = model.perceive(x)                  # the perception node's estimate (tta 1)
    np.testing.assert_allclose(omega, want_omega, atol=1e-5)
    with torch.no_grad():
        want_q = model.net.control(torch.from_numpy(want_omega)).numpy()
    np.testing.assert_allclose(q, want_q, atol=1e-4)
    np.testing.assert_array_equal(action, model.control.act(want_omega))   # the controller's action
    model.perception.tta = 0                        # the augmentation is in the graph: it matters
    assert not np.allclose(omega, model.perceive(x), atol=1e-5)


def test_an_onnx_file_exported_with_the_cross_runs_its_five_copies_as_the_torch_network(onnx_model, tmp_path,
                                                                                    capsys):
    model, ring = onnx_model
    model.save(tmp_path / "e2e.pt")
    assert cli_main(["export", "end2end", "--model", str(tmp_path / "e2e.pt"), "--tta-pattern", "cross",
                     "--out", str(tmp_path / "cross.onnx")]) == 0
    runner = OnnxPerception(tmp_path / "cross.onnx")
    assert (runner.tta, runner.tta_pattern) == (1, "cross")
    assert OnnxPerception(ring).tta_pattern == "ring"
    x = _images(7, seed=3)
    model.perception.tta, model.perception.tta_pattern = 1, "cross"
    np.testing.assert_allclose(runner.predict(x), model.perceive(x), atol=1e-5)
    model.perception.tta_pattern = "square"          # the pattern is in the graph: it matters
    assert not np.allclose(runner.predict(x), model.perceive(x), atol=1e-5)
    assert cli_main(["export", "end2end", "--model", str(tmp_path / "e2e.pt"), "--tta-pattern", "ring",
                     "--out", str(tmp_path / "ring.onnx")]) == 0
    model.perception.tta_pattern = "ring"            # 4 copies: the mean of the two middle ones
    np.testing.assert_allclose(OnnxPerception(tmp_path / "ring.onnx").predict(x), model.perceive(x),
                               atol=1e-5)
    with pytest.raises(SystemExit):                  # argparse: not one of the patterns
        cli_main(["export", "end2end", "--model", str(tmp_path / "e2e.pt"), "--tta-pattern", "star",
                  "--out", str(tmp_path / "star.onnx")])
    assert "invalid choice: 'star'" in capsys.readouterr().err


def test_the_onnx_file_runs_without_torch_or_reach_core_and_carries_its_metadata(onnx_model, tmp_path):
    _, path = onnx_model
    np.save(tmp_path / "x.npy", _images(3, seed=4))
    code = ("import sys, json; sys.modules['torch'] = None; sys.modules['reach_core'] = None\n"
            "import numpy as np, onnx, onnxruntime as ort\n"
            f"s = ort.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])\n"
            f"q, om, a = s.run(None, {{'images': np.load({str(tmp_path / 'x.npy')!r})}})\n"
            f"props = {{p.key: p.value for p in onnx.load({str(path)!r}).metadata_props}}\n"
            "meta = json.loads(props['reach.meta'])\n"
            "print(json.dumps({'q': q.shape, 'om': om.shape, 'a': str(a.dtype), 'tta': meta['tta'], "
            "'dof': meta['dof'], 'format': meta['format']}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"q": [3, 9], "om": [3, 5], "a": "int64", "tta": 1, "dof": 3,
                   "format": "reach.end2end.onnx/1"}


def test_a_network_trained_without_camera_shifts_is_exported_without_augmentation(tmp_path):
    torch.manual_seed(1)
    ControlPolicy(QNetwork((16,)), TaskConfig(dof=3), {}).save(tmp_path / "ctrl.pt")
    PerceptionModel(PerceptionNet(ArchConfig("paper", width=0.25)), {}).save(tmp_path / "perc.pt")
    model = EndToEndModel.from_modules(tmp_path / "perc.pt", tmp_path / "ctrl.pt")
    runner = OnnxEndToEnd(export_onnx(model, tmp_path / "plain.onnx", tta=1))
    assert runner.meta["tta"] == 0
    x = _images(4, seed=5)
    np.testing.assert_allclose(runner.run(x)[1], model.perceive(x), atol=1e-5)


def test_reach_export_end2end_writes_onnx_and_onnx_input_of_the_wrong_shape_is_a_clear_error(
        onnx_model, tmp_path, capsys):
    model, path = onnx_model
    model.save(tmp_path / "e2e.pt")
    assert cli_main(["export", "end2end", "--model", str(tmp_path / "e2e.pt"), "--tta", "0",
                     "--out", str(tmp_path / "cli.onnx")]) == 0
    runner = OnnxEndToEnd(tmp_path / "cli.onnx")
    assert runner.meta["tta"] == 0 and runner.meta["dof"] == 3
    assert cli_main(["export", "end2end", "--model", str(tmp_path / "e2e.pt"), "--tta", "7",
                     "--out", str(tmp_path / "bad.onnx")]) == 2
    assert "tta must be" in capsys.readouterr().err and not (tmp_path / "bad.onnx").exists()
    with pytest.raises(ValueError, match="84, 84"):
        OnnxEndToEnd(path).run(np.zeros((2, 64, 64), np.float32))
