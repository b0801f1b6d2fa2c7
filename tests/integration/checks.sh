# Shared by the shell tests (sourced): check and expect_fail. The sourcing
# script sets $tmp (a scratch folder) and reads $failures / $passes.
failures=0 passes=0
check() { # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "ok   - $what"; passes=$((passes + 1)); else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
# expect_fail <status> <pattern> <command...>: exits with status, stderr matches
expect_fail() {
  local want=$1 pattern=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [[ $got -eq $want ]] || { echo "  exit $got, wanted $want: $*"; cat "$tmp/err"; return 1; }
  grep -q -- "$pattern" "$tmp/err" || { echo "  stderr lacks '$pattern':"; cat "$tmp/err"; return 1; }
}
