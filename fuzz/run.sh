#!/bin/sh
# Fuzz seqgrad's file readers with libFuzzer for a bounded time. Three targets:
#   safetensors  fuzz/fuzz_safetensors.c: sg_safetensors_parse on every input
#   checkpoint   fuzz/fuzz_checkpoint.c: sg_checkpoint_load of every input into an LSTM +
#                Dense model and its Adam optimizer; a failed load must change nothing,
#                errors must start with "sg_checkpoint_load: <path>: ", a successful load
#                must hold exactly the file's values
#   onnx         fuzz/fuzz_onnx.c: sg_onnx_parse of every input, and sg_onnx_import of a
#                parsed one into three fixed models; a failed import must change nothing
# All are built with clang's AddressSanitizer and UndefinedBehaviorSanitizer including its
# integer checks (signed overflow, shifts, division by zero, implicit conversions that
# change a value), every report fatal. Unsigned wrap-around is defined C and intended in
# the generator and hashes, so unsigned-integer-overflow and unsigned-shift-base are off.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
#   SECONDS   total fuzzing time, split evenly between the targets (default 60)
#   TARGET    safetensors, checkpoint and/or onnx (default: all three, in that order)
#   env: CLANG (default clang-14, else clang), FUZZ_WORK (build/run directory; default a
#        fresh mktemp dir, removed afterwards unless a fuzzer found something),
#        FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=2 -workers=2"),
#        SG_FUZZ_STRICT=1 (the targets' extra checks, see fuzz/README.md)
#
# Each target first replays, one by one, its seed corpus (fuzz/corpus, fuzz/corpus_checkpoint,
# fuzz/corpus_onnx)
# and the inputs that once crashed it (fuzz/findings/<target>/, kept as regression seeds),
# naming every one that fails; then fuzzes from a copy of those that pass, with its
# dictionary (fuzz/<target>.dict). The repository is never modified. Every target runs
# even when an earlier one failed.
#
# Exit status: 0 when no seed failed and no fuzzer found anything; otherwise nonzero (the
# first failing target's libFuzzer status, or 1): the input is saved as
# $FUZZ_WORK/<target>/crash-*, leak-*, timeout-* or oom-* (a failing seed as
# crash-replay-<name>, its output in replay-<name>.log), and the directory is kept.
# Reproduce with
#   $FUZZ_WORK/fuzz_<target> $FUZZ_WORK/<target>/crash-...
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
count() { find "$1" -type f | wc -l; }
usage() { echo "usage: $0 [SECONDS] [safetensors|checkpoint|onnx ...]" >&2; exit 2; }
secs=60
case ${1:-} in
    '') ;;
    *[!0-9]*) ;;
    *) secs=$1; shift ;;
esac
targets=${*:-safetensors checkpoint onnx}
ntargets=0
for t in $targets; do
    case $t in safetensors | checkpoint | onnx) ntargets=$((ntargets + 1)) ;; *) usage ;; esac
done
share=$((secs / ntargets))
[ "$share" -ge 1 ] || share=1

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
mkdir -p "$work/obj"
# The checkpoint target's input file: in memory when /dev/shm is there, in a directory of
# its own that goes away with this script (a crashed or timed-out run leaves its file).
SG_FUZZ_TMPDIR=$(mktemp -d /dev/shm/sg-fuzz.XXXXXX 2>/dev/null || mktemp -d "$work/tmp.XXXXXX")
export SG_FUZZ_TMPDIR
trap 'rm -rf "$SG_FUZZ_TMPDIR"' EXIT

san="-fsanitize=address,undefined,integer -fno-sanitize=unsigned-integer-overflow,unsigned-shift-base"
san="$san -fno-sanitize-recover=all"
cflags="-g -O1 -std=c11 -fno-omit-frame-pointer $san"
# io/onnx*.c read and write ONNX through protobuf-c code generated from Debian's onnx.proto,
# as meson.build does.
command -v protoc-c >/dev/null 2>&1 || { echo "$0: protoc-c not found (apt-get install protobuf-c-compiler libprotobuf-c-dev libonnx-dev)" >&2; exit 2; }
protoc-c --proto_path=/usr/include/onnx --c_out="$work" /usr/include/onnx/onnx.proto
# shellcheck disable=SC2086,SC2046
set -- -I"$root" -I"$root/tensor" -I"$root/autograd" -I"$root/layers" -I"$root/optim" -I"$root/io" \
    -I"$work" ${blis_inc:+-I"$blis_inc"} $(pkg-config --cflags libcjson sleef libprotobuf-c)
libs="$(pkg-config --libs libcjson sleef libprotobuf-c) -lblis -lm -lpthread"

# The library once, instrumented for coverage (fuzzer-no-link); each target links it.
echo "building the library with $cc ($san)"
objs=
for f in "$root"/tensor/*.c "$root"/autograd/*.c "$root"/layers/*.c "$root"/optim/*.c "$root"/io/*.c \
    "$work/onnx.pb-c.c"; do
    o="$work/obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o"
    # shellcheck disable=SC2086
    "$cc" $cflags -fsanitize=fuzzer-no-link "$@" -c "$f" -o "$o"
    objs="$objs $o"
done

status=0
summary=
for t in $targets; do
    case $t in
        safetensors) corpus=$here/corpus ;;
        checkpoint) corpus=$here/corpus_checkpoint ;;
        onnx) corpus=$here/corpus_onnx ;;
    esac
    echo "==== $t: building $work/fuzz_$t"
    # shellcheck disable=SC2086
    "$cc" $cflags -fsanitize=fuzzer "$@" "$here/fuzz_$t.c" $objs -o "$work/fuzz_$t" $libs
    rm -rf "${work:?}/$t"
    mkdir -p "$work/$t/corpus" "$work/$t/replay"
    cp "$corpus"/* "$work/$t/replay/"
    if [ -d "$here/findings/$t" ]; then
        for f in "$here/findings/$t"/*; do
            [ -f "$f" ] && cp "$f" "$work/$t/replay/finding_$(basename "$f")"
        done
    fi
    # Replay every seed and past finding on its own first, so that each one that fails
    # is named (a known bug not fixed yet, or a regression), then fuzz from the others:
    # one failing seed must not stop the search for new bugs.
    failed=0
    for f in "$work/$t/replay"/*; do
        b=$(basename "$f")
        if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
            "$work/fuzz_$t" -timeout=10 -rss_limit_mb=2048 "$f" >"$work/$t/replay-$b.log" 2>&1; then
            cp "$f" "$work/$t/corpus/"
            rm -f "$work/$t/replay-$b.log"
        else
            failed=$((failed + 1))
            cp "$f" "$work/$t/crash-replay-$b"
            echo "$0: $t: seed $b fails:" >&2
            grep -aE 'runtime error|INVARIANT|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY' \
                "$work/$t/replay-$b.log" | head -n 3 | sed 's/^/    /' >&2
        fi
    done
    dict=
    [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
    echo "==== $t: $(count "$work/$t/replay") seeds replayed, $failed failing;" \
        "fuzzing for ${share}s from the $(count "$work/$t/corpus") others"
    set +e
    # shellcheck disable=SC2086
    (cd "$work/$t" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$work/fuzz_$t" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/$t/" $dict ${FUZZ_ARGS:-} \
        "$work/$t/corpus" >"$work/$t/fuzz.log" 2>&1)
    rc=$?
    set -e
    # libFuzzer prints a line per new input: keep the log, show its final statistics.
    grep -E '^(Done|stat::)|INFO: (Running with|seed|-max_len)' "$work/$t/fuzz.log" || true
    if [ $rc -ne 0 ]; then
        tail -n 60 "$work/$t/fuzz.log" >&2
        echo "$0: $t: the fuzzer found a problem (exit $rc); inputs and log in $work/$t" >&2
        ls "$work/$t" >&2
    fi
    if [ $failed -ne 0 ]; then
        echo "$0: $t: $failed seed(s) fail: $work/$t/crash-replay-*, replay-*.log" >&2
        [ $rc -ne 0 ] || rc=1
    fi
    if [ $rc -ne 0 ]; then
        summary="$summary $t:FAILED"
        [ $status -ne 0 ] || status=$rc
    else
        summary="$summary $t:ok"
    fi
done

echo "$0: ${share}s per target:$summary"
if [ $status -ne 0 ]; then
    echo "$0: kept $work (binaries fuzz_<target>, inputs and logs in <target>/)" >&2
    exit $status
fi
if [ -z "${FUZZ_WORK:-}" ]; then rm -rf "$work"; fi
echo "$0: no findings"
