#!/usr/bin/python3
"""PyTorch reference for bench_lstm: time one LSTM training step.

A step is what bench/bench_lstm.c times:
    opt.zero_grad(); forward over the whole sequence; last h -> Linear(H, 1);
    loss = mse(pred, y); loss.backward(); opt.step()     (plain SGD, lr 1e-3)
with x (B, T, I) batch-major and y (B, 1) fixed random tensors, for three models:

  torch.nn.LSTM  nn.LSTM(I, H, batch_first=True) + nn.Linear(H, 1): PyTorch's own LSTM
                 (one ATen kernel per step, hand-written backward).
  torch-fused    composed ops in seqgrad's "fused" (Keras) layout: kernel (I, 4H),
                 recurrent_kernel (H, 4H), bias (4H); xk = x @ kernel + bias for all steps
                 in one product; per step z = xk[:, t] + h @ rk (skipped at t = 0, h_0 = 0,
                 as seqgrad does), i, f, g, o = z.chunk(4, 1), c = f*c + i*g, h = o*tanh(c).
                 The xk[:, t] come from one xk.unbind(1) (see FusedLSTM for why).
  torch-fused-select  the same with a separate xk[:, t] per step (not in --impl all: it
                 measures a PyTorch autograd inefficiency, O(T^2) gradient traffic).
  torch-gates    composed ops in seqgrad's "gates" layout: four (H + I, H) matrices and
                 four (1, H) biases applied per step to cat([h, x_t], 1) (h_0 = zeros).

Prints one JSON line per (config, model) with bench_lstm's keys: config, B, T, I, H, impl,
dtype, threads, steps, median_ms, min_ms, gflops (bench_lstm's nominal count,
3 * (2*B*T*(I+H)*4H + 2*B*H) FLOPs per step), peak_rss_kb (of a fresh process running that
one model, so the figures do not leak into each other), plus torch (the version) and
blis_arch_type (the BLIS_ARCH_TYPE it ran with, null if unset).

PyTorch's float matmuls go to the system BLAS; on Debian that is the libblas.so.3
alternative, here BLIS (the same library seqgrad uses, with the same sub-configuration
choice; BLIS_ARCH_TYPE affects both). BLIS takes its thread count from BLIS_NUM_THREADS /
OMP_NUM_THREADS, not from torch.set_num_threads, so --threads sets both variables before
importing torch.

    /usr/bin/python3 bench/torch_lstm.py [--config all|tiny|small|medium|large]
        [--impl all|nn|fused|gates|fused-select] [--dtype f32|f64] [--threads N] [--steps N] [--check]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {  # name: (B, T, I, H)
    "tiny": (2, 3, 5, 4),
    "small": (32, 32, 16, 64),
    "medium": (64, 64, 64, 256),
    "large": (128, 50, 128, 512),
}
IMPLS = {"nn": "torch.nn.LSTM", "fused": "torch-fused", "gates": "torch-gates",
         "fused-select": "torch-fused-select"}
# Steps when --steps is not given: tiny/small run for about TARGET_S seconds (at least
# MIN_STEPS), medium/large for about TARGET_S seconds but between 10 and 20 steps.
TARGET_S = 2.0
STEP_RANGE = {"tiny": (200, 200000), "small": (50, 20000), "medium": (10, 20), "large": (10, 20)}


def parse_args():
    p = argparse.ArgumentParser(description="Time one LSTM training step in PyTorch.")
    p.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    p.add_argument("--impl", default="all",
                   choices=["all"] + list(IMPLS) + list(IMPLS.values()))
    p.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    p.add_argument("--check", action="store_true",
                   help="check that the models compute the same loss and gradients "
                        "(float64, tiny) and exit")
    a = p.parse_args()
    if a.threads < 1 or a.steps < 0:
        p.error("--threads must be >= 1 and --steps >= 0")
    return a


args = parse_args()
# Before importing torch: BLIS (PyTorch's BLAS here) and OpenMP read these at their first use.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["BLIS_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402


class NNLSTM(nn.Module):
    """torch.nn.LSTM + Linear(H, 1) on the last hidden state."""

    def __init__(self, I, H):
        super().__init__()
        self.lstm = nn.LSTM(I, H, batch_first=True)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)  # h is (1, B, H)
        return self.head(h[0])


class FusedLSTM(nn.Module):
    """Keras layout as composed ops (seqgrad's SG_LSTM_FUSED), gate blocks i, f, c, o.

    The per-step slices xk[:, t] come from one xk.unbind(1): its backward stacks the T
    slice gradients once. Indexing xk[:, t] separately (select=True, impl
    "torch-fused-select") gives the same values, but PyTorch's SelectBackward then builds
    a zero-filled (B, T, 4H) gradient for every step and adds them all up, O(T^2) memory
    traffic that dominates the step (measured here, 1 thread, median: small 26 ms
    instead of 6.9 ms, medium 941 ms instead of 217 ms)."""

    def __init__(self, I, H, select=False):
        super().__init__()
        s = H ** -0.5
        self.kernel = nn.Parameter(torch.empty(I, 4 * H).uniform_(-s, s))
        self.recurrent_kernel = nn.Parameter(torch.empty(H, 4 * H).uniform_(-s, s))
        bias = torch.zeros(4 * H)
        bias[H:2 * H] = 1.0  # unit_forget_bias
        self.bias = nn.Parameter(bias)
        self.head = nn.Linear(H, 1)
        self.select = select

    def forward(self, x):
        B, T, _ = x.shape
        H = self.recurrent_kernel.shape[0]
        xk = x @ self.kernel + self.bias  # (B, T, 4H): one (B*T, I) @ (I, 4H) product
        xs = None if self.select else xk.unbind(1)  # T views (B, 4H)
        h, c = None, x.new_zeros(B, H)
        for t in range(T):
            z = xk[:, t] if self.select else xs[t]
            if h is not None:  # h_0 = 0 contributes nothing
                z = z + h @ self.recurrent_kernel
            i, f, g, o = z.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h)


class GatesLSTM(nn.Module):
    """One (H + I, H) matrix per gate on cat([h, x_t]) (seqgrad's SG_LSTM_GATES)."""

    def __init__(self, I, H):
        super().__init__()
        s = H ** -0.5
        # Gate order f, i, o, c, the original design note's (seqgrad's own gates layer
        # uses i, f, c, o: docs/lstm.md).
        self.W = nn.ParameterList(
            [nn.Parameter(torch.empty(H + I, H).uniform_(-s, s)) for _ in range(4)])
        self.b = nn.ParameterList(
            [nn.Parameter(torch.full((1, H), 1.0 if g == 0 else 0.0)) for g in range(4)])
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        B, T, _ = x.shape
        H = self.W[0].shape[1]
        h, c = x.new_zeros(B, H), x.new_zeros(B, H)
        for t in range(T):
            v = torch.cat([h, x[:, t]], 1)  # (B, H + I)
            f = torch.sigmoid(v @ self.W[0] + self.b[0])
            i = torch.sigmoid(v @ self.W[1] + self.b[1])
            o = torch.sigmoid(v @ self.W[2] + self.b[2])
            g = torch.tanh(v @ self.W[3] + self.b[3])
            c = f * c + i * g
            h = o * torch.tanh(c)
        return self.head(h)


MODELS = {"torch.nn.LSTM": NNLSTM, "torch-fused": FusedLSTM, "torch-gates": GatesLSTM,
          "torch-fused-select": lambda I, H: FusedLSTM(I, H, select=True)}
DEFAULT_IMPLS = ["torch.nn.LSTM", "torch-fused", "torch-gates"]  # --impl all


def make(impl, cfg, dtype):
    torch.manual_seed(42)
    B, T, I, H = CONFIGS[cfg]
    model = MODELS[impl](I, H).to(dtype)
    x = torch.randn(B, T, I, dtype=dtype)
    y = torch.randn(B, 1, dtype=dtype)
    return model, x, y


def bench(impl, cfg, dtype_name, threads, steps):
    dtype = torch.float64 if dtype_name == "f64" else torch.float32
    torch.set_num_threads(threads)
    model, x, y = make(impl, cfg, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = nn.functional.mse_loss

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)  # zero-fill, as seqgrad does
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return (time.perf_counter() - t0) * 1e3

    # Warm-up (also sizes the run when --steps is not given), then the timed steps.
    warm = [step() for _ in range(3)]
    if not steps:
        lo, hi = STEP_RANGE[cfg]
        steps = int(min(hi, max(lo, TARGET_S * 1e3 / min(warm))))
    for _ in range(steps // 10):
        step()
    ms = sorted(step() for _ in range(steps))
    B, T, I, H = CONFIGS[cfg]
    flops = 3.0 * (2.0 * B * T * (I + H) * 4 * H + 2.0 * B * H)
    med = ms[steps // 2]  # the same index as bench_lstm
    return {
        "config": cfg, "B": B, "T": T, "I": I, "H": H, "impl": impl, "dtype": dtype_name,
        "threads": threads, "steps": steps, "median_ms": round(med, 6),
        "min_ms": round(ms[0], 6), "gflops": round(flops / (med * 1e-3) / 1e9, 3),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "torch": torch.__version__,
        # PyTorch's BLIS (libblas.so.3) hides bli_arch_query_id: record the request instead.
        "blis_arch_type": os.environ.get("BLIS_ARCH_TYPE"),
    }


def check():
    """Map one nn.LSTM's weights onto the fused and gates layouts (the mapping of
    docs/lstm.md) and compare losses and weight gradients in float64."""
    B, T, I, H = CONFIGS["tiny"]
    dt = torch.float64
    ref, x, y = make("torch.nn.LSTM", "tiny", dt)
    fused, _, _ = make("torch-fused", "tiny", dt)
    gates, _, _ = make("torch-gates", "tiny", dt)
    fsel, _, _ = make("torch-fused-select", "tiny", dt)
    L = ref.lstm
    with torch.no_grad():
        for f in (fused, fsel):
            f.kernel.copy_(L.weight_ih_l0.T)
            f.recurrent_kernel.copy_(L.weight_hh_l0.T)
            f.bias.copy_(L.bias_ih_l0 + L.bias_hh_l0)
        # PyTorch blocks i, f, g, o; gates W order f, i, o, c.
        for g, blk in enumerate([1, 0, 3, 2]):
            sl = slice(blk * H, (blk + 1) * H)
            gates.W[g].copy_(torch.cat([L.weight_hh_l0[sl].T, L.weight_ih_l0[sl].T], 0))
            gates.b[g].copy_((L.bias_ih_l0 + L.bias_hh_l0)[sl].unsqueeze(0))
        for m in (fused, gates, fsel):
            m.head.load_state_dict(ref.head.state_dict())
    losses = {}
    for name, m in (("nn", ref), ("fused", fused), ("gates", gates), ("fused-select", fsel)):
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        losses[name] = loss.item()
    ok = all(abs(v - losses["nn"]) < 1e-12 for v in losses.values())
    dk = L.weight_ih_l0.grad.T
    drk = L.weight_hh_l0.grad.T
    for f in (fused, fsel):
        ok &= torch.allclose(f.kernel.grad, dk, atol=1e-12)
        ok &= torch.allclose(f.recurrent_kernel.grad, drk, atol=1e-12)
        ok &= torch.allclose(f.bias.grad, L.bias_ih_l0.grad, atol=1e-12)
    for g, blk in enumerate([1, 0, 3, 2]):
        sl = slice(blk * H, (blk + 1) * H)
        ok &= torch.allclose(gates.W[g].grad, torch.cat([drk[:, sl], dk[:, sl]], 0), atol=1e-12)
        ok &= torch.allclose(gates.b[g].grad[0], L.bias_ih_l0.grad[sl], atol=1e-12)
    print("check:", "ok" if ok else "MISMATCH", losses)
    return 0 if ok else 1


def main():
    if args.check:
        return check()
    cfgs = list(CONFIGS) if args.config == "all" else [args.config]
    impls = DEFAULT_IMPLS if args.impl == "all" else [IMPLS.get(args.impl, args.impl)]
    if len(cfgs) * len(impls) == 1:
        print(json.dumps(bench(impls[0], cfgs[0], args.dtype, args.threads, args.steps),
                         separators=(",", ":")), flush=True)
        return 0
    # Several runs: one fresh process each, so that peak RSS and allocator state are
    # those of one model only.
    rc = 0
    for cfg in cfgs:
        for impl in impls:
            cmd = [sys.executable, os.path.abspath(__file__), "--config", cfg, "--impl", impl,
                   "--dtype", args.dtype, "--threads", str(args.threads),
                   "--steps", str(args.steps)]
            rc |= subprocess.call(cmd)
    return rc


if __name__ == "__main__":
    sys.exit(main())
