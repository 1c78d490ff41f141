"""The proxy domain's seeds: which scene seeds are held-out test sets (benchmarks only) and which
are a user's collected adaptation frames, and the look-seed stride of its datasets."""
from __future__ import annotations

PROXY_COLLECT_SEED = 100              # scene seeds PROXY_COLLECT_SEED.. of a user's collected frames
PROXY_TEST_SEED = 2100                # scene seeds >= this: held-out test sets, benchmarks only
LOOK_SEED_STRIDE = 1_000_003          # datasets: frame i of scene seed S has look S * stride + i


def seed_split(seed: int) -> str:
    """"test" for held-out test seeds (>= PROXY_TEST_SEED: benchmarks only, never train or tune
    on them), "collect" for the seeds of a user's collected adaptation frames."""
    return "test" if seed >= PROXY_TEST_SEED else "collect"
