#!/usr/bin/env bash
# Check that an installed seqgrad is usable from outside the source tree: install the build
# into a staging directory, compile a small program against it with nothing but
# `pkg-config --cflags --libs seqgrad` (shared), and again with nothing but
# `pkg-config --static --libs seqgrad`, which must link libseqgrad.a (this also proves the
# private libraries in seqgrad.pc are complete). ldd checks that the shared program loads
# libseqgrad.so and that the static one does not need it; then both run, and what they
# print is checked.
#
#   scripts/check_install.sh [BUILD_DIR]      (default: build, or $BUILD_DIR)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${1:-${BUILD_DIR:-build}}"

die() {
  echo "check_install.sh: FAIL: $*" >&2
  exit 1
}

[ -f "$build_dir/build.ninja" ] || die "no configured build in '$build_dir' (run scripts/setup.sh)"
command -v pkg-config >/dev/null || die "pkg-config not found (apt-get install pkgconf)"
cc_cmd="${CC:-cc}"

stage=$(mktemp -d "${TMPDIR:-/tmp}/seqgrad-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

echo "check_install.sh: meson install -C $build_dir --destdir $stage"
meson install -C "$build_dir" --destdir "$stage" --quiet || die "meson install failed"

pc=$(find "$stage" -name seqgrad.pc -print -quit)
[ -n "$pc" ] || die "no seqgrad.pc installed under $stage"
pcdir=$(dirname "$pc")
# seqgrad.pc requires seqgrad-lib.pc, which holds -lseqgrad (see pkg.generate in meson.build).
[ -f "$pcdir/seqgrad-lib.pc" ] || die "no seqgrad-lib.pc next to $pc"
libdir=$(dirname "$pcdir")
[ -n "$(find "$stage" -path '*/seqgrad/seqgrad.h' -print -quit)" ] || die "seqgrad.h not installed"
[ -f "$libdir/libseqgrad.a" ] || die "no libseqgrad.a in $libdir"
ls "$libdir"/libseqgrad.so* >/dev/null 2>&1 || die "no libseqgrad.so in $libdir"

# The .pc file carries the real prefix (/usr/local); the sysroot maps it into the stage.
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$stage"
pkg-config --exists --print-errors seqgrad || die "pkg-config cannot resolve seqgrad.pc"
read -r -a cflags <<<"$(pkg-config --cflags seqgrad)"
read -r -a libs <<<"$(pkg-config --libs seqgrad)"
read -r -a static_libs <<<"$(pkg-config --static --libs seqgrad)"
echo "check_install.sh: pkg-config --cflags --libs seqgrad: ${cflags[*]} ${libs[*]}"
echo "check_install.sh: pkg-config --static --libs seqgrad: ${static_libs[*]}"

work="$stage/prog"
mkdir -p "$work"
cat >"$work/prog.c" <<'EOF'
/* A program outside the tree: only <seqgrad.h> and pkg-config. */
#include <seqgrad.h>
#include <stdio.h>

int main(void) {
    sg_ctx *ctx = sg_ctx_new(0);
    if (!ctx)
        return 2;
    const double av[] = {1, 2, 3, 4}, bv[] = {5, 6, 7, 8};
    sg_tensor *a = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 2), av);
    sg_tensor *b = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 2), bv);
    sg_tensor *c = sg_matmul(ctx, a, b);
    if (!c) {
        fprintf(stderr, "error: %s\n", sg_ctx_error(ctx));
        sg_ctx_free(ctx);
        return 1;
    }
    sg_tensor_set_name(c, "c");
    sg_print(c, stdout);
    printf("values:");
    for (int i = 0; i < 4; i++)
        printf(" %g", sg_get_flat(c, i));
    printf("\n");
    int rc = sg_ctx_error(ctx) ? 1 : 0;
    sg_ctx_free(ctx);
    return rc;
}
EOF
expected="values: 19 22 43 50"

# Shared: -lseqgrad finds libseqgrad.so in the stage.
"$cc_cmd" -std=c11 -Wall -Wextra -Werror -o "$work/prog_shared" "$work/prog.c" \
  "${cflags[@]}" "${libs[@]}" || die "compiling against the shared library failed"
# Static: exactly the flags `pkg-config --static` prints, nothing rewritten; they must pick
# libseqgrad.a, then every private library seqgrad.pc lists.
"$cc_cmd" -std=c11 -Wall -Wextra -Werror -o "$work/prog_static" "$work/prog.c" \
  "${cflags[@]}" "${static_libs[@]}" ||
  die "static link failed: the private libraries in seqgrad.pc are incomplete"

# ldd's output is captured first: `ldd | grep -q` under pipefail fails at random when grep
# exits at the first match and ldd dies of SIGPIPE writing the rest (seen in CI).
# Both run with the staged libdir on LD_LIBRARY_PATH, so that a dependency on libseqgrad.so
# shows as a path into the stage rather than as "not found".
ldd_shared=$(LD_LIBRARY_PATH="$libdir" ldd "$work/prog_shared") || die "ldd prog_shared failed"
ldd_static=$(LD_LIBRARY_PATH="$libdir" ldd "$work/prog_static") || die "ldd prog_static failed"
seqgrad_line() { grep -F libseqgrad <<<"$1" | sed 's/^[[:space:]]*//' || echo "(no libseqgrad)"; }
echo "check_install.sh: ldd prog_shared: $(seqgrad_line "$ldd_shared")"
echo "check_install.sh: ldd prog_static: $(seqgrad_line "$ldd_static")"
grep -qF "$libdir/libseqgrad.so" <<<"$ldd_shared" ||
  die "prog_shared (pkg-config --libs seqgrad) does not load the staged libseqgrad.so"
if grep -qF libseqgrad <<<"$ldd_static"; then
  die "prog_static, linked with \`pkg-config --static --libs seqgrad\` (${static_libs[*]}), still needs libseqgrad.so: the static flags in seqgrad.pc do not select libseqgrad.a"
fi

for prog in prog_shared prog_static; do
  echo "check_install.sh: running $prog"
  if ! out=$(LD_LIBRARY_PATH="$libdir" "$work/$prog" 2>&1); then
    printf '%s\n' "$out"
    die "$prog exited with an error"
  fi
  printf '%s\n' "$out"
  grep -qxF "$expected" <<<"$out" || die "$prog printed no line '$expected'"
done
echo "check_install.sh: OK (headers, pkg-config, shared and static linking)"
