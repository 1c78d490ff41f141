"""The sim-to-real benchmark's declared selection (bench/bench_sim2real.py): the adaptation recipe
is chosen on the tuning domain (hifi validation frames) and only then reported on the held-out
proxy, whose figures never enter the choice."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench():
    spec = importlib.util.spec_from_file_location('bench_sim2real', ROOT / 'bench' / 'bench_sim2real.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RESULTS = {
    'sim_real': {'proxy_painted_calibrated': 0.30, 'hifi_val': 0.05},
    'hifi_base': {'hifi_val': 0.030, 'proxy_painted_calibrated': 0.40},
    'hifi_unlab': {'hifi_val': 0.025, 'proxy_painted_calibrated': 0.50},
    'hifi_feat': {'hifi_val': 0.040, 'proxy_painted_calibrated': 0.10},
    'proxy200_base': {'proxy_painted_calibrated': 0.02, 'hifi_val': 0.2},
    'proxy200_unlab': {'proxy_painted_calibrated': 0.05, 'hifi_val': 0.2},
    'proxy200_feat': {'proxy_painted_calibrated': 0.01, 'hifi_val': 0.2},
    'proxy50_unlab': {'proxy_painted_calibrated': 0.07, 'hifi_val': 0.2},
}


def test_the_variant_with_the_lowest_hifi_validation_error_is_chosen_whatever_the_proxy_says():
    chosen = bench().choose_variant(RESULTS, on='hifi_val')
    assert chosen['variant'] == 'unlab'
    assert set(chosen['scores']) == {'base', 'unlab', 'feat'}
    assert set(chosen['reported']) == {'proxy200_unlab', 'proxy50_unlab'}
    assert chosen['reported']['proxy200_unlab'] == RESULTS['proxy200_unlab']


def test_choosing_without_any_hifi_run_is_a_clear_error():
    proxy_only = {k: v for k, v in RESULTS.items() if not k.startswith('hifi_')}
    with pytest.raises(ValueError, match='hifi_'):
        bench().choose_variant(proxy_only, on='hifi_val')
