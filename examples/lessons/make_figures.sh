#!/bin/sh
# Regenerate every figure of docs/tutorial.md into docs/lessons/: builds the lessons (in
# build/, set up if missing) and runs each with --out docs/lessons. With Graphviz installed
# (apt-get install graphviz) the graphs are also rendered to SVG and PNG.
#
#   examples/lessons/make_figures.sh
set -eu
cd "$(dirname "$0")/../.."
[ -f build/build.ninja ] || meson setup build
ninja -C build examples/lessons/lesson1_two_lstms examples/lessons/lesson2_bptt_by_hand \
  examples/lessons/lesson3_vanishing examples/lessons/lesson4_gates \
  examples/lessons/lesson5_custom_op
mkdir -p docs/lessons
for lesson in lesson1_two_lstms lesson2_bptt_by_hand lesson3_vanishing lesson4_gates \
  lesson5_custom_op; do
  echo "== $lesson"
  "build/examples/lessons/$lesson" --out docs/lessons
done
