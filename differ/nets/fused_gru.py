"""`algo.fused_gru=true`: the learner's agent GRU as one compiled kernel (fused_gru.cpp).

torch's CPU GRU spends most of a learner step's GRU time on op calls (about ten per time step
forward, more backward, on [rows x 64] tensors), not on arithmetic. The kernel runs a time step
as one matmul plus one vectorised pass over the gates, forward and backward. It is the same
function as `nn.GRU` with the same weights; its exp and tanh round differently, so the numbers
agree to float precision, not bit for bit (an option, off by default). A run with it is
deterministic like any other.

The kernel is compiled for this machine's CPU the first time a run asks for it (about 30 s; it
needs a C++ compiler, Python's headers and ninja) and cached in ~/.cache/differ/kernels
(DIFFER_KERNEL_CACHE moves it), so later runs load it at once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ..errors import ConfigError
from ..interrupts import raise_if_interrupted

SOURCE = Path(__file__).with_suffix(".cpp")
KEY = "algo.fused_gru=true"


def _flags() -> tuple[list[str], list[str]]:
    """Compiler and linker flags: vectorised exp/tanh from glibc's libmvec on x86-64 Linux
    (-ffast-math lets GCC call them; it is not passed to the linker, so the process's float mode
    is left alone), plain -O3 elsewhere."""
    cflags = ["-O3", "-march=native"]
    if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
        return cflags + ["-ffast-math", "-fopenmp"], ["-lmvec"]
    return cflags, []


def _cpu_id() -> str:
    """What -march=native compiled for: a cache shared by machines with other CPUs gets one
    build per CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFER_KERNEL_CACHE", Path.home() / ".cache" / "differ" / "kernels"))


def build_dir() -> Path:
    """Where this source, compiled with these flags for this torch, Python and CPU, lives."""
    cflags, ldflags = _flags()
    digest = hashlib.sha256(
        "\n".join([SOURCE.read_text(), *cflags, *ldflags, torch.__version__, sys.version, _cpu_id()]).encode()
    ).hexdigest()[:12]
    return cache_dir() / f"differ_fused_gru_{digest}"


STALE_LOCK_S = 300  # a build takes ~30 s on 2 cores; a lock this old was left by a build that was killed


def _clear_stale_lock(lock: Path) -> None:
    """torch's build lock has no timeout: a build killed part-way (a sweep's time limit, SIGKILL)
    would leave every later run waiting on it for ever. Wait while another process may still be
    building, then remove a lock older than STALE_LOCK_S."""
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age > STALE_LOCK_S:
            lock.unlink(missing_ok=True)
            return
        time.sleep(1.0)


@functools.cache
def kernel():
    """The compiled kernel (built on first use, then loaded from the cache). One line naming the
    key and the fix when it cannot be built."""
    from torch.utils import cpp_extension

    build = cache_dir()
    try:
        build = build_dir()
        cflags, ldflags = _flags()
        try:
            import ninja  # the pip package puts a ninja binary beside itself; torch looks on PATH

            path = os.environ.get("PATH", "")
            if ninja.BIN_DIR not in path.split(os.pathsep):
                os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path
        except ImportError:
            pass
        try:
            cpp_extension.verify_ninja_availability()
        except RuntimeError:
            raise ConfigError(
                f"{KEY} compiles a kernel with ninja, which is not installed: "
                f"`pip install ninja` (or leave algo.fused_gru out)"
            ) from None
        build.mkdir(parents=True, exist_ok=True)
        _clear_stale_lock(build / "lock")
        return cpp_extension.load(
            name=build.name,
            sources=[str(SOURCE)],
            extra_cflags=cflags,
            extra_ldflags=ldflags,
            build_directory=str(build),
            verbose=False,
        )
    except ConfigError:
        raise
    except Exception as e:  # compiler missing or failing, unwritable cache, ...: one line, not a traceback
        raise_if_interrupted()  # the compiler died of the terminal's Ctrl-C: the build did not fail
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ConfigError(
            f"{KEY}: the fused GRU kernel did not compile ({first[:200]}); it needs a C++ "
            f"compiler (g++) and Python's headers; the build is in {build}; or leave "
            f"algo.fused_gru out"
        ) from None


class _FusedGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, sizes, h0, w_hh, b_hh):
        out, gates = kernel().forward(gi, sizes, h0, w_hh, b_hh, True)
        ctx.save_for_backward(out, gates, sizes, h0, w_hh)
        return out

    @staticmethod
    @once_differentiable  # the kernel's gradient has no gradient of its own: a double backward raises
    def backward(ctx, grad_out):
        out, gates, sizes, h0, w_hh = ctx.saved_tensors
        dgi, dh0, dw, db = kernel().backward(grad_out.contiguous(), out, gates, sizes, h0, w_hh)
        return dgi, None, dh0, dw, db


def _run(rnn: nn.GRU, x: torch.Tensor, sizes: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The packed recurrence: x [P, H_in] -> outputs [P, H]. The input projection of every row is
    one matmul, run under whatever autocast is on (bfloat16 with algo.agent_precision=bfloat16, as
    torch's GRU does); the recurrence runs in float32."""
    gi = F.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0).float().contiguous()
    w_hh, b_hh = rnn.weight_hh_l0.contiguous(), rnn.bias_hh_l0.contiguous()
    if torch.is_grad_enabled() and any(t.requires_grad for t in (gi, h0, w_hh, b_hh)):
        return _FusedGRU.apply(gi, sizes, h0, w_hh, b_hh)
    return kernel().forward(gi, sizes, h0, w_hh, b_hh, False)[0]  # target passes: nothing kept for a backward


def unroll(rnn: nn.GRU, x: torch.Tensor, h: torch.Tensor | None = None):
    """What `rnn(x, h)` returns, through the kernel: x [T, R, H_in], h [1, R, H] or None (zeros)
    -> outputs [T, R, H], h_T [1, R, H]."""
    T, R, _ = x.shape
    h0 = x.new_zeros(R, rnn.hidden_size, dtype=torch.float32) if h is None else h[0].float().contiguous()
    sizes = torch.full((T,), R, dtype=torch.long)
    out = _run(rnn, x.reshape(T * R, -1), sizes, h0).view(T, R, rnn.hidden_size)
    return out, out[-1:]


def unroll_packed(rnn: nn.GRU, x: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """The GRU over packed sequences from zero states (torch's PackedSequence layout: `sizes[t]`
    rows at step t, longest sequences first): x [P, H_in] -> outputs [P, H]."""
    h0 = x.new_zeros(int(sizes[0]) if len(sizes) else 0, rnn.hidden_size, dtype=torch.float32)
    return _run(rnn, x, sizes, h0)
