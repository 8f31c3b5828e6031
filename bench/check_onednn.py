#!/usr/bin/python3
"""Check bench_onednn's step against PyTorch, once: the harness computes what bench_lstm does.

    build/bench/bench_onednn --config small --dump /tmp/onednn.json
    /usr/bin/python3 bench/check_onednn.py /tmp/onednn.json

The dump holds one step's inputs, weights (Keras layout: kernel (I, 4H), recurrent kernel
(H, 4H), bias (4H), gates i, f, c, o) and oneDNN's loss and LSTM weight gradients. This script
recomputes the step in float64 with torch.nn.LSTM (weights mapped as docs/lstm.md says:
PyTorch's order i, f, g, o is Keras' i, f, c, o; weight_ih = kernel^T; the bias in bias_ih,
bias_hh zero) and prints the largest relative difference of each; exit 1 above 1e-4."""
import json
import sys

import torch


def main():
    d = json.load(open(sys.argv[1]))
    B, T, I, H = d["B"], d["T"], d["I"], d["H"]
    t = lambda k, *shape: torch.tensor(d[k], dtype=torch.float64).reshape(*shape)
    x = t("x_tbi", T, B, I)
    lstm = torch.nn.LSTM(I, H, dtype=torch.float64)  # (T, B, I) input, as the dump
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(t("kernel", I, 4 * H).T)
        lstm.weight_hh_l0.copy_(t("recurrent_kernel", H, 4 * H).T)
        lstm.bias_ih_l0.copy_(t("bias", 4 * H))
        lstm.bias_hh_l0.zero_()
    y, _ = lstm(x, (torch.zeros(1, B, H, dtype=torch.float64),) * 2)
    pred = y[-1] @ t("dense_kernel", H, 1) + t("dense_bias", 1)
    loss = ((pred.squeeze(1) - t("target", B)) ** 2).mean()
    loss.backward()
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
    checks = {
        "loss": rel(torch.tensor(d["loss"], dtype=torch.float64), loss.detach()),
        "d_kernel": rel(t("d_kernel", I, 4 * H), lstm.weight_ih_l0.grad.T),
        "d_recurrent_kernel": rel(t("d_recurrent_kernel", H, 4 * H), lstm.weight_hh_l0.grad.T),
        "d_bias": rel(t("d_bias", 4 * H), lstm.bias_ih_l0.grad),
    }
    for k, v in checks.items():
        print(f"{k}: max relative difference {v:.3g}")
    ok = all(v <= 1e-4 for v in checks.values())
    print("check_onednn:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
