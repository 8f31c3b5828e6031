#!/bin/sh
# Compare two bench_lstm binaries (before and after a change) on a noisy, shared machine:
# runs them interleaved, alternating which goes first, ROUNDS times per config and
# implementation, and prints per row the median of each one's per-run medians, their ratio
# (after / before: below 1 is faster) and arena bytes per step.
#
#   bench/ab.sh BEFORE/bench_lstm AFTER/bench_lstm
#
# Environment: ROUNDS (default 5), CONFIGS (default "tiny small medium large"),
# IMPLS (default "fused gates"), THREADS (default 1).
set -u
A=${1:?usage: bench/ab.sh BEFORE_BENCH_LSTM AFTER_BENCH_LSTM}
B=${2:?usage: bench/ab.sh BEFORE_BENCH_LSTM AFTER_BENCH_LSTM}
ROUNDS=${ROUNDS:-5}
CONFIGS=${CONFIGS:-tiny small medium large}
IMPLS=${IMPLS:-fused gates}
THREADS=${THREADS:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# field NAME: the value of "NAME": in a JSON line on stdin
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

r=1
while [ "$r" -le "$ROUNDS" ]; do
    for c in $CONFIGS; do
        for i in $IMPLS; do
            if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
            for who in $order; do
                if [ "$who" = A ]; then bin=$A; else bin=$B; fi
                line=$("$bin" --config "$c" --impl "$i" --threads "$THREADS" | grep '^{' | tail -n 1)
                echo "$c $i $who $(echo "$line" | field median_ms) $(echo "$line" | field arena_bytes_per_step)" >>"$out"
            done
        done
    done
    r=$((r + 1))
done

echo "| config | impl | before ms | after ms | after/before | arena bytes before | after |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in $CONFIGS; do
    for i in $IMPLS; do
        awk -v c="$c" -v i="$i" '
            function median(arr, n,   k, j, t) {
                for (k = 1; k <= n; k++) for (j = k + 1; j <= n; j++)
                    if (arr[j] < arr[k]) { t = arr[k]; arr[k] = arr[j]; arr[j] = t }
                return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
            }
            $1 == c && $2 == i && $3 == "A" { a[++na] = $4; ba = $5 }
            $1 == c && $2 == i && $3 == "B" { b[++nb] = $4; bb = $5 }
            END {
                ma = median(a, na); mb = median(b, nb)
                printf "| %s | %s | %.5g | %.5g | %.3f | %d | %d |\n", c, i, ma, mb, mb / ma, ba, bb
            }' "$out"
    done
done
