#!/bin/sh
# Fuzz the safetensors reader: build fuzz/fuzz_safetensors.c with libFuzzer, ASan and UBSan
# (clang) against the library sources it needs, and run it for a bounded time from a copy
# of fuzz/corpus (the seed corpus in the repository is never modified).
#
#   fuzz/run.sh [SECONDS]        default 60
#   env: CLANG (default clang-14, else clang), FUZZ_WORK (build/run directory; default a
#        fresh mktemp dir, removed afterwards unless the fuzzer found something),
#        FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=2 -workers=2")
#
# Exit status: 0 when the run ends without a finding; nonzero (libFuzzer's) when it finds
# a crash, a leak, a sanitizer report or a timeout; the input is saved as
# $FUZZ_WORK/crash-*, leak-*, timeout-* and the directory is kept. Reproduce with
#   $FUZZ_WORK/fuzz_safetensors $FUZZ_WORK/crash-...
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

cc=${CLANG:-}
if [ -z "$cc" ]; then
    if command -v clang-14 >/dev/null 2>&1; then cc=clang-14; else cc=clang; fi
fi
command -v "$cc" >/dev/null 2>&1 || { echo "$0: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

# BLIS has no pkg-config file on Debian: find blis.h as meson.build does.
blis_inc=
for d in /usr/include/x86_64-linux-gnu/blis-openmp /usr/include/x86_64-linux-gnu/blis-pthread \
         /usr/include/x86_64-linux-gnu/blis-serial /usr/include/blis /usr/local/include/blis; do
    if [ -z "$blis_inc" ] && [ -f "$d/blis.h" ]; then blis_inc=$d; fi
done

work=${FUZZ_WORK:-$(mktemp -d /tmp/sg-fuzz.XXXXXX)}
mkdir -p "$work/corpus"
cp "$here"/corpus/* "$work/corpus/"

# The reader and what it links against: the tensor core and autograd (no layers/optim).
srcs="$root/io/safetensors.c $here/fuzz_safetensors.c"
for f in "$root"/tensor/*.c "$root"/autograd/*.c; do srcs="$srcs $f"; done
echo "building $work/fuzz_safetensors with $cc"
# shellcheck disable=SC2086
"$cc" -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer \
    -I"$root" -I"$root/tensor" -I"$root/autograd" -I"$root/layers" -I"$root/optim" -I"$root/io" \
    ${blis_inc:+-I"$blis_inc"} $(pkg-config --cflags libcjson sleef) \
    $srcs -o "$work/fuzz_safetensors" \
    $(pkg-config --libs libcjson sleef) -lblis -lm -lpthread

dict=
[ -f "$here/safetensors.dict" ] && dict="-dict=$here/safetensors.dict"
echo "fuzzing for ${secs}s from $(ls "$work/corpus" | wc -l) seeds"
set +e
# shellcheck disable=SC2086
(cd "$work" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ./fuzz_safetensors -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" $dict ${FUZZ_ARGS:-} \
    "$work/corpus" >"$work/fuzz.log" 2>&1)
rc=$?
set -e
# libFuzzer prints a line per new input: keep the log, show its final statistics.
grep -E '^(Done|stat::)|INFO: (Running with|seed|-max_len)' "$work/fuzz.log" || true
if [ $rc -ne 0 ]; then
    tail -n 60 "$work/fuzz.log" >&2
    echo "$0: the fuzzer found a problem (exit $rc); inputs, log and binary kept in $work" >&2
    ls "$work" >&2
    exit $rc
fi
if [ -z "${FUZZ_WORK:-}" ]; then rm -rf "$work"; fi
echo "$0: no findings in ${secs}s"
