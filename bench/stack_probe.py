"""What stacking several seeds in one process could gain: a QMIX-DIFFER learner step at the
3s5z_vs_3s6z shape (T 60, full-length synthetic episodes) with batch 32 and batch 64 (the rows two
stacked seeds would give every call), 1 and 2 torch threads. usage: python bench/stack_probe.py
FUSED_GRU(true|false) PRECISION(float32|bfloat16)"""

import statistics
import sys
import time

import numpy as np
import torch

from differ.assemble import assemble
from differ.commands.bench import synthetic_batches
from differ.config import build_config

spec, buf = synthetic_batches("3s5z_vs_3s6z", 128, 64)
over = {"algo": "qmix_differ", "algo.fused_gru": sys.argv[1], "algo.agent_precision": sys.argv[2]}
res = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    for B in (32, 64):
        learner = assemble(build_config({**over, "algo.batch_size": str(B), "algo.buffer_size": "128"}), spec)
        ts = []
        for i in range(12):
            b = buf.sample(B, np.random.default_rng(i), learner.batch_obs_dtype)
            t0 = time.perf_counter()
            learner.train(b)
            if i >= 2:
                ts.append(time.perf_counter() - t0)
        res[(threads, B)] = 1000 * statistics.median(ts)
        print(threads, B, round(res[(threads, B)], 1), flush=True)
print(
    "two seeds stacked (batch 64, 2 threads) vs two processes (batch 32, 1 thread each): throughput ratio",
    round(res[(1, 32)] / res[(2, 64)], 2),
)
