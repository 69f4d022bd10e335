#!/bin/sh
# Runs each test binary, echoes its output, sums its "<name>: N passed, N failed"
# line. A binary that exits non-zero without reporting a failure, or prints no
# summary (a crash, a sanitizer abort), counts as one failure.
passed=0; failed=0; skipped=0
for bin in "$@"; do
  [ -x "$bin" ] || continue
  out=$(ASAN_OPTIONS=detect_leaks=1 "$bin" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
  sk=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_./-]+: [0-9]+ skipped' | tail -n 1 | sed -E 's/.*: ([0-9]+) skipped.*/\1/')
  [ -n "$sk" ] && skipped=$((skipped + sk))
  if [ -z "$line" ]; then
    echo "$bin: crashed or printed no summary (exit $rc)"; failed=$((failed + 1)); continue
  fi
  p=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
  f=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "$bin: exit $rc with no failure reported"; failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
