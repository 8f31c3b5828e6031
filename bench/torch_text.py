#!/usr/bin/python3
"""PyTorch twin of `train --task text`: the same data protocol, the same model shape and
the same training, to run side by side with seqgrad.

The protocol (README.md, "Real text"), followed exactly:
  - vocabulary: the distinct bytes of the file, sorted;
  - the first n - floor(n / 10) bytes train, the rest are held out;
  - training: the training bytes but the last cut into B equal contiguous streams of
    S = (ntrain - 1) // B inputs (targets one byte further); step k of an epoch of S // T
    steps takes inputs [k T, (k + 1) T) of every stream; the state is carried from step to
    step (detached: truncated BPTT over T) and reset to zero at k = 0;
  - held out: the held-out bytes but the last as 8 streams of (nheld - 1) // 8 inputs, run
    once from a zero state (in chunks of T, the state carried); the loss is the mean
    cross-entropy over every predicted byte; bpc = that / ln 2;
  - baseline: the cross-entropy of the training bytes' unigram with add-one counts on the
    same held-out predictions.
Model: nn.Embedding(V, E) -> nn.LSTM(E, H, num_layers=L, batch_first=True, dropout=...)
-> nn.Linear(H, V); softmax cross-entropy at every step; Adam, gradient norm clipping.
PyTorch's default initialisation (not seqgrad's).

Prints progress lines, with --eval-every N a line
    eval step <n> eval_loss <nats> bpc <bits> seconds <training seconds so far>
and last
    result: task=text cell=lstm impl=torch eval_loss=<x> baseline=<y> bpc=<z> steps=<n> seconds=<s>

BLIS takes its thread count from BLIS_NUM_THREADS / OMP_NUM_THREADS, so --threads sets them
before importing torch (as bench/torch_lstm.py does).

    /usr/bin/python3 bench/torch_text.py [--text PATH] [--steps N] [--batch N] [--seq-len N]
        [--hidden N] [--embed N] [--layers N] [--lr X] [--clip X] [--dropout X] [--seed N]
        [--threads N] [--eval-every N] [--log-every N]
"""
import argparse
import math
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch twin of train --task text.")
    p.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    return p.parse_args()


def main():
    a = parse_args()
    os.environ["BLIS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = open(a.text, "rb").read()
    n = len(data)
    vocab = sorted(set(data))
    if n == 0 or len(vocab) < 2:
        sys.exit("torch_text: %s: empty, or a single distinct byte" % a.text)
    id_of = {b: i for i, b in enumerate(vocab)}
    ids = torch.tensor([id_of[b] for b in data], dtype=torch.long)
    ntrain = n - n // 10
    B, T, V = a.batch, a.seq_len, len(vocab)
    S = (ntrain - 1) // B
    chunks = S // T
    held = (n - ntrain - 1) // 8
    if chunks < 1 or held < 1:
        sys.exit("torch_text: %s: too short for --batch %d --seq-len %d" % (a.text, B, T))
    # streams (B, S + 1): inputs [:, :S], targets [:, 1:]
    train = torch.stack([ids[b * S: b * S + S + 1] for b in range(B)])
    heldout = torch.stack([ids[ntrain + s * held: ntrain + s * held + held + 1] for s in range(8)])

    counts = torch.bincount(ids[:ntrain], minlength=V).double() + 1
    logp = torch.log(counts / counts.sum())
    baseline = -logp[heldout[:, 1:]].mean().item()

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, a.embed)
            self.rnn = nn.LSTM(a.embed, a.hidden, num_layers=a.layers, batch_first=True,
                               dropout=a.dropout)
            self.head = nn.Linear(a.hidden, V)

        def forward(self, x, state):
            y, state = self.rnn(self.emb(x), state)
            return self.head(y), state

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)

    def evaluate():
        model.eval()
        total = 0.0
        with torch.no_grad():
            state = None
            for at in range(0, held, T):
                t = min(T, held - at)
                logits, state = model(heldout[:, at:at + t], state)
                total += F.cross_entropy(logits.reshape(-1, V), heldout[:, at + 1:at + t + 1]
                                         .reshape(-1), reduction="sum").item()
        model.train()
        return total / (8 * held)

    print("task=text cell=lstm impl=torch layers=%d hidden=%d embed=%d batch=%d seq_len=%d "
          "steps=%d lr=%g params=%d torch=%s threads=%d blis_arch_type=%s" %
          (a.layers, a.hidden, a.embed, B, T, a.steps, a.lr,
           sum(p.numel() for p in model.parameters()), torch.__version__, a.threads,
           os.environ.get("BLIS_ARCH_TYPE")), flush=True)
    state = None
    t0 = time.perf_counter()
    eval_time = 0.0
    for step in range(a.steps):
        k = step % chunks
        if k == 0:
            state = None  # a fresh (zero) state when the streams wrap around
        x = train[:, k * T:(k + 1) * T]
        y = train[:, k * T + 1:(k + 1) * T + 1]
        opt.zero_grad()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        state = tuple(s.detach() for s in state)
        el = time.perf_counter() - t0 - eval_time
        if (step + 1) % a.log_every == 0 or step + 1 == a.steps:
            print("step %d/%d loss %.5f steps/s %.1f" % (step + 1, a.steps, loss.item(),
                                                          (step + 1) / el), flush=True)
        if a.eval_every and (step + 1) % a.eval_every == 0:
            e0 = time.perf_counter()
            e = evaluate()
            eval_time += time.perf_counter() - e0
            print("eval step %d eval_loss %.6f bpc %.4f seconds %.2f" %
                  (step + 1, e, e / math.log(2), el), flush=True)
    seconds = time.perf_counter() - t0 - eval_time
    ev = evaluate()
    print("result: task=text cell=lstm impl=torch eval_loss=%.6g baseline=%.6g bpc=%.4f "
          "steps=%d seconds=%.2f" % (ev, baseline, ev / math.log(2), a.steps, seconds))


if __name__ == "__main__":
    main()
