#!/usr/bin/python3
"""Check seqgrad's LSTM against PyTorch's nn.LSTM through the lstm_run program.

    /usr/bin/python3 examples/compare_with_torch.py [path/to/lstm_run] [--impl gates] [--f32]

Builds a random nn.LSTM, writes its weights (PyTorch names) and an input with h0, c0 and
an upstream gradient dy to safetensors files, runs lstm_run, reads its output and prints
the largest relative difference of y, h, c and every gradient. Needs torch and numpy; the
safetensors format is written and read here directly (8-byte header length, JSON header,
raw little-endian data), so the `safetensors` package is not needed.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}
NP = {"F32": np.float32, "F64": np.float64}


def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + end], dtype=NP[e["dtype"]]).reshape(e["shape"])
    return out


def main():
    args = sys.argv[1:]
    exe = next((a for a in args if not a.startswith("--")), "build/examples/lstm_run")
    impl = "gates" if "--impl" in args and args[args.index("--impl") + 1] == "gates" else "fused"
    dt = torch.float32 if "--f32" in args else torch.float64
    B, T, I, H = 3, 5, 4, 6
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, batch_first=True).to(dt)
    x = torch.randn(B, T, I, dtype=dt, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=dt, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=dt, requires_grad=True)
    dy = torch.randn(B, T, H, dtype=dt)
    y, (h, c) = lstm(x, (h0, c0))
    (y * dy).sum().backward()

    with tempfile.TemporaryDirectory() as d:
        w, i, o = (os.path.join(d, n) for n in ("w.safetensors", "in.safetensors", "out.safetensors"))
        save(w, {k: v.detach().numpy() for k, v in lstm.state_dict().items()})
        save(i, {"x": x.detach().numpy(), "h0": h0[0].detach().numpy(),
                 "c0": c0[0].detach().numpy(), "dy": dy.numpy()})
        subprocess.run([exe, "--weights", w, "--input", i, "--output", o, "--impl", impl], check=True)
        got = load(o)

    # PyTorch's gradients in Keras layout: kernel = weight_ih^T, bias = bias_ih + bias_hh.
    want = {"y": y, "h": h[0], "c": c[0], "dx": x.grad, "dh0": h0.grad[0], "dc0": c0.grad[0],
            "dkernel": lstm.weight_ih_l0.grad.T, "drecurrent_kernel": lstm.weight_hh_l0.grad.T,
            "dbias": lstm.bias_ih_l0.grad}
    worst = 0.0
    for name, ref in want.items():
        ref = ref.detach().numpy()
        err = np.max(np.abs(got[name] - ref) / (np.abs(ref) + 1e-12 if dt == torch.float64 else np.abs(ref) + 1e-6))
        worst = max(worst, err)
        print(f"{name:18s} {str(tuple(ref.shape)):12s} max rel diff {err:.2e}")
    tol = 1e-10 if dt == torch.float64 else 1e-4
    print(f"impl={impl} dtype={'float64' if dt == torch.float64 else 'float32'}: "
          f"{'OK' if worst < tol else 'MISMATCH'} (worst {worst:.2e}, tolerance {tol:.0e})")
    return 0 if worst < tol else 1


if __name__ == "__main__":
    sys.exit(main())
