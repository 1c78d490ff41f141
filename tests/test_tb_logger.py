"""reach_core.tb_logger: what it writes is read back from the event file with TensorBoard's own
reader; without a folder or without TensorBoard it writes nothing and does not fail."""
from __future__ import annotations

import builtins
import math

import numpy as np
import pytest
import torch

from reach_core.tb_logger import TBLogger


def events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir), size_guidance={'scalars': 0, 'images': 0,
                                                        'histograms': 0, 'tensors': 0})
    acc.Reload()
    return acc


def test_scalars_histograms_images_and_text_are_read_back_from_the_event_file(tmp_path):
    with TBLogger(tmp_path / 'tb') as tb:
        assert tb.active
        for step in range(5):
            tb.scalars({'loss': 1.0 / (step + 1), 'epsilon': np.float32(0.5 - 0.1 * step)},
                       step, prefix='train')
        tb.scalar('train/loss', math.nan, 5)               # skipped, not written
        tb.scalar('eval/success', torch.tensor(0.75), 4)
        tb.histogram('q', torch.tensor([1.0, 2.0, 2.0, float('inf')]), 3)
        tb.image('frame', np.linspace(0, 1, 12 * 16).reshape(12, 16), 2)
        tb.text('config', 'lr=1e-3', 0)
    assert tb.skipped == 1 and not tb.active
    acc = events(tmp_path / 'tb')
    loss = acc.Scalars('train/loss')
    assert [e.step for e in loss] == [0, 1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert [e.value for e in acc.Scalars('train/epsilon')] == pytest.approx(
        [0.5, 0.4, 0.3, 0.2, 0.1], abs=1e-6)
    assert [(e.step, e.value) for e in acc.Scalars('eval/success')] == [(4, 0.75)]
    hist = acc.Histograms('q')[0]
    assert hist.step == 3 and hist.histogram_value.num == 3     # the infinity left out
    assert hist.histogram_value.min == 1.0 and hist.histogram_value.max == 2.0
    img = acc.Images('frame')[0]
    assert (img.step, img.width, img.height) == (2, 16, 12)
    assert 'config/text_summary' in acc.Tags()['tensors']


def test_without_a_folder_nothing_is_written(tmp_path):
    tb = TBLogger(None)
    assert not tb.active and 'no TensorBoard folder' in tb.reason
    tb.scalar('x', 1.0, 0)
    tb.histogram('h', [1, 2], 0)
    tb.image('i', np.zeros((2, 2)), 0)
    tb.text('t', 'x')
    tb.close()
    assert TBLogger('').active is False


def test_without_tensorboard_it_is_a_no_op_that_says_why(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kw):
        if name.startswith('torch.utils.tensorboard'):
            raise ImportError('No module named tensorboard')
        return real_import(name, *args, **kw)
    monkeypatch.setattr(builtins, '__import__', no_tensorboard)
    with TBLogger(tmp_path / 'tb') as tb:
        assert not tb.active
        assert 'TensorBoard is not available (No module named tensorboard)' in tb.reason
        tb.scalars({'loss': 1.0}, 0)
    assert not (tmp_path / 'tb').exists()


def test_every_run_folder_logs_its_progress_rows_to_tensorboard(tmp_path):
    from reach_core.runs import Run
    run = Run(tmp_path / "run")
    run.record({"step": 10, "loss": 0.5, "e_sim": 0.1, "note": "text is skipped"})
    run.record({"step": 20, "loss": 0.25, "e_sim": 0.05})
    run.finish({"steps": 20})
    acc = events(tmp_path / "run" / "tb")
    loss = acc.Scalars("progress/loss")
    assert [e.step for e in loss] == [10, 20] and loss[-1].value == 0.25
    assert "progress/e_sim" in acc.Tags()["scalars"] and "progress/note" not in acc.Tags()["scalars"]
