"""The perception network on ncnn (reach_core.perception.ncnn_runtime): the same estimates as
torch, with and without test-time augmentation, for both architectures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reach_core.end_to_end import EndToEndModel
from reach_core.perception import ArchConfig, PerceptionModel, PerceptionNet, tta_for
from reach_core.perception.ncnn_runtime import (NcnnPerception, NcnnUnavailable, ncnn_graph, polyphase,
                                                shifted_inputs)
from reach_core.renderer import preprocess, render, sample_scenes

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"


@pytest.fixture(scope="module")
def images():
    target, q = sample_scenes(6, seed=4)
    return preprocess(render(target, q))


def _random_model(arch: ArchConfig, seed: int = 0) -> PerceptionModel:
    torch.manual_seed(seed)
    net = PerceptionNet(arch)
    with torch.no_grad():
        for m in net.modules():   # batch norm statistics that are not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        if arch.arch == "spatial":
            net.features[-1].log_temperature.fill_(-0.4)
    return PerceptionModel(net)


def test_ncnn_estimates_the_shipped_network_as_torch_does_with_test_time_augmentation(images):
    model = EndToEndModel.load(MODELS / "end2end_ee2ft.pt").perception
    model.tta = tta_for(model, 1)
    assert model.tta == 1
    fast = NcnnPerception(model)
    assert fast.tta == 1
    np.testing.assert_allclose(fast.predict(images), model.predict(images), atol=5e-5)
    two = NcnnPerception(model, threads=2)      # the copies split over two threads
    np.testing.assert_array_equal(two.predict(images), fast.predict(images))
    fast.tta_pattern = model.tta_pattern = "cross"    # 5 copies: the image and its 4 neighbours
    cross = fast.predict(images)
    np.testing.assert_allclose(cross, model.predict(images), atol=5e-5)
    assert np.abs(cross - two.predict(images)).max() > 1e-6   # another set of copies
    two.tta_pattern = "cross"
    np.testing.assert_array_equal(two.predict(images), cross)
    fast.tta_pattern = two.tta_pattern = model.tta_pattern = "ring"   # 4 copies: an even median
    np.testing.assert_allclose(fast.predict(images), model.predict(images), atol=5e-5)
    np.testing.assert_array_equal(two.predict(images), fast.predict(images))
    fast.tta_pattern = model.tta_pattern = "cross"
    with pytest.raises(ValueError, match="tta_pattern"):
        fast.tta_pattern = "diamond"
    assert fast.tta_pattern == "cross"
    fast.tta = model.tta = 0
    np.testing.assert_allclose(fast.predict(images[:2]), model.predict(images[:2]), atol=5e-5)


@pytest.mark.parametrize("arch", [ArchConfig(arch="spatial", width=0.25, keypoints=8, batchnorm=True),
                                  ArchConfig(arch="paper", width=0.25, batchnorm=True, fc_hidden=16),
                                  ArchConfig(arch="paper", width=0.25)])
def test_ncnn_translates_both_architectures_with_batch_norm_folded(images, arch):
    model = _random_model(arch)
    fast = NcnnPerception(model)
    for radius in (0, 1):
        model.tta = fast.tta = radius
        want = model.predict(images[:3])
        assert np.ptp(want) > 1e-3          # the outputs differ between images: a real check
        np.testing.assert_allclose(fast.predict(images[:3]), want, atol=2e-5)


@pytest.mark.parametrize("shifts", [[(0, 0)], [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                                    [(0, 0), (-2, 0), (2, 0), (0, -1), (0, 2)]])
@pytest.mark.parametrize("layout", [None, (2, 2), (4, 0)])
def test_the_shifted_inputs_are_torch_roll_of_the_padded_phases(shifts, layout):
    rng = np.random.default_rng(len(shifts))
    image = rng.random((84, 84)).astype(np.float32)
    got = np.take(np.append(image.reshape(-1), np.float32(0.0)), shifted_inputs(shifts, layout))
    s, p = layout or (1, 0)
    assert got.shape[:2] == (len(shifts), s * s)
    for copy, shift in zip(got, shifts):
        rolled = np.pad(torch.roll(torch.from_numpy(image), shift, dims=(0, 1)).numpy(), p)
        for a in range(s):
            for b in range(s):
                np.testing.assert_array_equal(copy[a * s + b], rolled[a::s, b::s])


def test_the_first_strided_convolution_runs_over_the_image_phases():
    spatial = PerceptionNet(ArchConfig(arch="spatial", width=0.25, keypoints=4))
    paper = PerceptionNet(ArchConfig(arch="paper", width=0.25))
    assert polyphase(spatial.features[0]) == (2, 2)
    assert polyphase(paper.features[0]) == (4, 0)
    assert polyphase(spatial.features[2]) is None             # stride 1
    assert ncnn_graph(spatial)[2] == (2, 2)


def test_ncnn_refuses_a_layer_it_does_not_know_and_bad_input_as_the_model_does(images):
    model = _random_model(ArchConfig(arch="paper", width=0.25))
    model.net.head = torch.nn.Sequential(torch.nn.Linear(model.net.head.in_features, 5), torch.nn.Tanh())
    with pytest.raises(NcnnUnavailable, match="Tanh"):
        NcnnPerception(model)
    fast = NcnnPerception(_random_model(ArchConfig(arch="paper", width=0.25)))
    with pytest.raises(ValueError, match="84"):
        fast.predict(np.zeros((2, 80, 80), np.float32))
    with pytest.raises(ValueError, match="float32"):
        fast.predict(np.zeros((1, 84, 84), np.uint8))
    bad = images[:1].copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fast.predict(bad)
