#!/bin/sh
# Run the LSTM benchmark suite and print the comparison tables.
#
#   bench/run_all.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# For each config tiny, small, medium, large at float32, one thread and two threads, runs
#   BUILD_DIR/bench/bench_lstm --impl fused and --impl gates    (seqgrad; --threads 2 is
#                                                                 data parallelism over
#                                                                 threads where it pays)
#   BUILD_DIR/bench/bench_onednn                                 (oneDNN's LSTM primitive,
#                                                                 when built: libdnnl-dev)
#   bench/torch_lstm.py                                          (torch.nn.LSTM, torch-fused,
#                                                                 torch-gates)
#   BUILD_DIR/bench/bench_probe                                  (BLIS alone on the step's
#                                                                 matmuls: the limit)
#   BUILD_DIR/bench/bench_probe --kernels seqgrad                (the same products through
#                                                                 seqgrad's own dispatch)
# and once per round BUILD_DIR/bench/bench_peak at 1 and 2 threads (the FMA peak, for the
# "% of peak" column);
# collects every JSON line into bench/results.jsonl (overwritten) and prints Markdown tables
# (with the BLIS sub-configuration bench_probe reports above them).
# A program that is missing or fails shows as "n/a"; the script still prints the tables.
#
# Environment:
#   CONFIGS="tiny small"  run only these configs (default: tiny small medium large)
#   ROUNDS=3              repeat the whole sweep (interleaved) and keep, per config, thread
#                         count and program, the run with the lowest median (its min is the
#                         lowest of all runs): the way to read a noisy, shared machine
#   TABLE_ONLY=1          do not run anything: print the tables of bench/results.jsonl
#   BUSY=1                also run seqgrad fused at 1 and 2 threads with a CPU-burning
#                         process beside it (an oversubscribed machine): the "busy" table
#   BLIS_ARCH_TYPE=<id>   selects BLIS's sub-configuration for all three programs (see
#                         bench/README.md). When it is unset, the script asks bench_lstm
#                         which one seqgrad picks (its "blas" key: seqgrad selects skx on
#                         AVX-512 CPUs by itself) and exports that id for every program, so
#                         that PyTorch and the probe run the same BLIS kernels as seqgrad.
set -u

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
RESULTS=$HERE/results.jsonl
PY=/usr/bin/python3
CONFIGS=${CONFIGS:-tiny small medium large}
ROUNDS=${ROUNDS:-1}
LSTM=$BUILD/bench/bench_lstm
PROBE=$BUILD/bench/bench_probe
ONEDNN=$BUILD/bench/bench_onednn
PEAK=$BUILD/bench/bench_peak

# run CMD...: append the JSON lines CMD prints to the results; report failures on stderr.
run() {
    echo "run_all: $*" >&2
    out=$("$@") || echo "run_all: FAILED ($?): $*" >&2
    printf '%s\n' "$out" | grep '^{' >>"$RESULTS"
}

# run_as_installed CMD...: run without BLIS_ARCH_TYPE; its records say "as installed".
run_as_installed() {
    echo "run_all: (BLIS_ARCH_TYPE unset) $*" >&2
    out=$(env -u BLIS_ARCH_TYPE "$@") || echo "run_all: FAILED ($?): $*" >&2
    printf '%s\n' "$out" | grep '^{' |
        sed 's/"impl":"torch.nn.LSTM"/"impl":"torch.nn.LSTM as installed"/' >>"$RESULTS"
}

if [ "${TABLE_ONLY:-0}" != 1 ]; then
    : >"$RESULTS"
    [ -x "$LSTM" ] || echo "run_all: $LSTM not found: seqgrad columns will be n/a" >&2
    [ -x "$PROBE" ] || echo "run_all: $PROBE not found: probe column will be n/a" >&2
    # Same BLIS kernels for everybody: seqgrad sets BLIS_ARCH_TYPE inside its own process,
    # which PyTorch (the same BLIS, via libblas.so.3) and the probe would not see.
    if [ -z "${BLIS_ARCH_TYPE:-}" ] && [ -x "$LSTM" ] && [ -x "$PROBE" ]; then
        arch=$("$LSTM" --config tiny --steps 1 2>/dev/null |
            "$PY" -c 'import json, sys; print(json.loads(sys.stdin.readline()).get("blas", ""))' \
                2>/dev/null)
        id=$("$PROBE" --help | tr ',' '\n' | awk -v a="$arch" '$2 == a { print $1 }')
        if [ -n "$arch" ] && [ -n "$id" ]; then
            export BLIS_ARCH_TYPE="$id"
            echo "run_all: seqgrad uses BLIS '$arch': BLIS_ARCH_TYPE=$id for all programs" >&2
        fi
    fi
    round=1
    while [ "$round" -le "$ROUNDS" ]; do
        for cfg in $CONFIGS; do
            for th in 1 2; do
                if [ -x "$LSTM" ]; then
                    for impl in fused gates; do
                        run "$LSTM" --config "$cfg" --impl "$impl" --dtype f32 --threads "$th"
                    done
                fi
                run "$PY" "$HERE/torch_lstm.py" --config "$cfg" --impl all --dtype f32 \
                    --threads "$th"
                # PyTorch as installed: BLIS picks its own kernels (generic on CPUs it does
                # not know, such as Zen 5), which is what a PyTorch user here gets.
                run_as_installed "$PY" "$HERE/torch_lstm.py" --config "$cfg" \
                    --impl torch.nn.LSTM --dtype f32 --threads "$th"
                [ -x "$PROBE" ] && run "$PROBE" --config "$cfg" --dtype f32 --threads "$th"
                [ -x "$PROBE" ] && run "$PROBE" --config "$cfg" --dtype f32 --threads "$th" \
                    --kernels seqgrad
                [ -x "$ONEDNN" ] && run "$ONEDNN" --config "$cfg" --threads "$th"
            done
        done
        [ -x "$PEAK" ] && run "$PEAK" --threads 1 && run "$PEAK" --threads 2
        if [ "${BUSY:-0}" = 1 ] && [ -x "$LSTM" ]; then
            # a process that keeps one core busy; seqgrad at 1 and 2 threads beside it
            sh -c 'while :; do :; done' &
            burner=$!
            for cfg in $CONFIGS; do
                for th in 1 2; do
                    echo "run_all: (busy) $LSTM --config $cfg --threads $th" >&2
                    "$LSTM" --config "$cfg" --impl fused --dtype f32 --threads "$th" |
                        grep '^{' | sed 's/^{/{"busy":true,/' >>"$RESULTS"
                done
            done
            kill "$burner"
        fi
        round=$((round + 1))
    done
fi

"$PY" - "$RESULTS" <<'EOF'
import json, sys

rows = {}  # (config, threads, program) -> record
peaks = {}  # threads -> the highest FMA peak measured, GFLOP/s
with open(sys.argv[1]) as f:
    for line in f:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "probe" in r and r["probe"] == "fma_peak":
            peaks[r["threads"]] = max(peaks.get(r["threads"], 0), r["gflops_total"])
            continue
        if r.get("dtype", "f32") != "f32":
            continue
        impl = r.get("impl", "")
        prog = {"fused": "seqgrad fused", "gates": "seqgrad gates"}.get(impl, impl)
        if r.get("busy"):
            prog = "busy " + prog
        if prog.startswith("probe"):  # the probe reports matmul_ms_*
            r["median_ms"], r["min_ms"] = r["matmul_ms_median"], r["matmul_ms_min"]
        key = (r["config"], r["threads"], prog)
        old = rows.get(key)
        if old is None or r["median_ms"] < old["median_ms"]:  # several runs: the best median
            rows[key] = dict(r, min_ms=min(r["min_ms"], old["min_ms"]) if old else r["min_ms"])
        else:
            old["min_ms"] = min(old["min_ms"], r["min_ms"])

PROGS = ["seqgrad fused", "seqgrad gates", "onednn", "torch.nn.LSTM", "torch-fused",
         "torch-gates", "probe", "probe-seqgrad", "torch.nn.LSTM as installed"]
CONFIGS = ["tiny", "small", "medium", "large"]


def ms(cfg, th, prog, key="median_ms"):
    r = rows.get((cfg, th, prog))
    return r[key] if r else None


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if v >= 1000 else f"{v:.4g}"


def cell(cfg, th, prog):
    med, mn = ms(cfg, th, prog), ms(cfg, th, prog, "min_ms")
    return "n/a" if med is None else f"{fmt(med)} ({fmt(mn)})"


def ratio(a, b, suffix="x"):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}{suffix}"


# BLIS sub-configurations: bench_probe reports "blis_arch", bench_lstm "blas"; PyTorch's
# BLIS (libblas.so.3) cannot be asked, torch_lstm.py records the BLIS_ARCH_TYPE it ran with.
arches = {}
for r in rows.values():
    for key, who in (("blis_arch", "bench_probe"), ("blas", "seqgrad")):
        if r.get(key):
            arches.setdefault(who, set()).add(r[key])
torch_env = {r.get("blis_arch_type") or "unset" for r in rows.values()
             if r["impl"].startswith("torch") and "torch" in r and "installed" not in r["impl"]}
if arches or torch_env:
    print("BLIS sub-configuration: " + "; ".join(
        [f"{who} {', '.join(sorted(a))}" for who, a in sorted(arches.items())] +
        ([f"PyTorch BLIS_ARCH_TYPE={', '.join(sorted(torch_env))}"] if torch_env else [])) + "\n")
if len(set().union(*arches.values()) if arches else ()) > 1:
    print("WARNING: these results mix BLIS sub-configurations: the programs did not run the"
          " same matmul kernels, the tables are not comparable\n")
print("### seqgrad beside oneDNN's LSTM primitive, float32: median ms\n")
if peaks:
    print("FMA peak (bench_peak): " + ", ".join(f"{th} thread{'s' if th > 1 else ''} "
          f"{g:.0f} GFLOP/s" for th, g in sorted(peaks.items())) + "\n")
print("| config | seqgrad fused 1 thread | oneDNN 1 thread | seqgrad fused 2 threads "
      "(threads used) | oneDNN 2 threads | seqgrad 2 threads / 1 thread speedup "
      "| seqgrad / oneDNN, 1 thread | seqgrad / oneDNN, 2 threads |")
print("|---|" + "---:|" * 7)


def pct(cfg, th):
    r = rows.get((cfg, th, "seqgrad fused"))
    if not r or th not in peaks:
        return ""
    return f" ({100 * r['gflops'] / peaks[th]:.0f}%)"


for cfg in CONFIGS:
    if not any(k[0] == cfg for k in rows):
        continue
    f1, f2 = ms(cfg, 1, "seqgrad fused"), ms(cfg, 2, "seqgrad fused")
    o1, o2 = ms(cfg, 1, "onednn"), ms(cfg, 2, "onednn")
    used = rows.get((cfg, 2, "seqgrad fused"), {}).get("threads_used", "?")
    print(f"| {cfg} | {fmt(f1)}{pct(cfg, 1)} | {fmt(o1)} | {fmt(f2)}{pct(cfg, 2)} ({used}) "
          f"| {fmt(o2)} | {ratio(f1, f2)} | {ratio(f1, o1)} | {ratio(f2, o2)} |")
print("\n% = the step's nominal matmul GFLOP/s over the FMA peak at that thread count;"
      " seqgrad / oneDNN < 1: seqgrad is faster.\n")
if any(k[2] == "busy seqgrad fused" for k in rows):
    print("### A busy machine: another process keeps one core busy; median ms\n")
    print("| config | seqgrad fused 1 thread | 2 threads | 2 threads / 1 thread |")
    print("|---|---:|---:|---:|")
    for cfg in CONFIGS:
        a, b = ms(cfg, 1, "busy seqgrad fused"), ms(cfg, 2, "busy seqgrad fused")
        if a or b:
            print(f"| {cfg} | {fmt(a)} | {fmt(b)} | {ratio(b, a)} |")
    print()
print("### One training step, float32, 1 thread: median ms (min ms)\n")
print("| config | seqgrad fused ms | seqgrad gates ms | oneDNN ms | torch.nn.LSTM ms | torch fused "
      "| torch gates | probe matmul ms (BLIS) | probe matmul ms (seqgrad kernels) "
      "| torch.nn.LSTM as installed ms | fused/torch speedup | fused/torch as installed "
      "| fused/probe ratio | fused/probe-seqgrad ratio | gates/fused ratio |")
print("|---|" + "---:|" * 14)
for cfg in CONFIGS:
    if not any(k[0] == cfg for k in rows):
        continue
    f, g, t = (ms(cfg, 1, p) for p in ("seqgrad fused", "seqgrad gates", "torch.nn.LSTM"))
    p, ti = ms(cfg, 1, "probe"), ms(cfg, 1, "torch.nn.LSTM as installed")
    ps = ms(cfg, 1, "probe-seqgrad")
    print(f"| {cfg} | " + " | ".join(cell(cfg, 1, q) for q in PROGS) +
          f" | {ratio(t, f)} | {ratio(ti, f)} | {ratio(f, p)} | {ratio(f, ps)} | {ratio(g, f)} |")
print("\nfused/torch speedup = torch.nn.LSTM median / seqgrad fused median (> 1: seqgrad is"
      " faster), both on the same BLIS kernels; \"as installed\" = PyTorch with BLIS left to"
      " pick its kernels itself (BLIS_ARCH_TYPE unset), as a PyTorch user on this machine runs"
      " it; fused/probe ratio = seqgrad fused / BLIS-only matmul time (1 = matmul-bound);"
      " fused/probe-seqgrad ratio = seqgrad fused / the same products through seqgrad's own"
      " product dispatch (its register-blocked kernel where that beats BLIS), i.e. over the"
      " matmul time a seqgrad step really contains;"
      " gates/fused ratio = seqgrad gates / seqgrad fused.\n")

print("### Memory: arena bytes per step vs what backward must keep\n")
print("| config | program | arena MB per step | 7*B*T*H floats MB | ratio |")
print("|---|---|---:|---:|---:|")
for cfg in CONFIGS:
    for prog in ("seqgrad fused", "seqgrad gates"):
        r = rows.get((cfg, 1, prog))
        if not r or "arena_bytes_per_step" not in r:
            continue
        keep = 7 * r["B"] * r["T"] * r["H"] * 4
        print(f"| {cfg} | {prog} | {r['arena_bytes_per_step'] / 1e6:.3g} | {keep / 1e6:.3g} "
              f"| {r['arena_bytes_per_step'] / keep:.2f} |")
print("\nWhat backward must keep per time step: the four gates, c_t, tanh(c_t) and h_t, each"
      " (B, H) float32. The arena also holds the tensor headers (~0.5 KB per op), the inputs"
      " and the gradients.\n")

print("### Two threads vs one, float32: median ms, speedup = 1-thread / 2-thread\n")
print("| config | program | 1 thread ms | 2 threads ms | speedup |")
print("|---|---|---:|---:|---:|")
for cfg in CONFIGS:
    if not any(k[0] == cfg and k[1] == 2 for k in rows):
        continue
    for prog in PROGS:
        a, b = ms(cfg, 1, prog), ms(cfg, 2, prog)
        print(f"| {cfg} | {prog} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
EOF
