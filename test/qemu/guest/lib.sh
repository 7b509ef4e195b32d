# Sourced by every qemu scenario (test/qemu/scenarios/<name>.sh) before it runs, inside the guest.
#
# A scenario is a bash script. It reports assertions with
#   check NAME CMD [ARGS...]    runs CMD; passes when it exits 0; its output (tail) is the detail
#   result NAME true|false [DETAIL]
# Each assertion becomes one line {"scenario","name","ok","detail"} in $TABBY_RESULTS, read back by
# the host (test/qemu/harness.ts); all the scenario's output lands in its log, also sent back.
# A program in any language may append such lines to $TABBY_RESULTS itself (one JSON object a line:
# "name", "ok", "detail"; a "scenario" other than the running one becomes a prefix of the name).
# A scenario that reports nothing, or exits non-zero, or overruns its timeout, fails as a whole.
#
# The environment: the host's root filesystem read-only, tmpfs on /tmp, /run, /var/tmp and /var/log;
# $SCRATCH (the working directory) is a fresh tmpfs directory of this scenario; $TABBY_REPO is the
# repository (read-only), $TABBY_BIN the built binary (dist/tabby). Modules load with modprobe.
# Network namespaces made with `ip netns add` are the scenario's to delete (the guest is thrown away
# anyway, but the next scenario of the same boot should start clean).

# JSON string body of $1: backslash, quote and control characters escaped, at most 4000 characters.
_json_str() {
  local s=${1:0:4000}
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037\177'
}

# Milliseconds since the previous result (or the scenario's start): how long each assertion took.
_last_ms=${EPOCHREALTIME/./}
_last_ms=${_last_ms:0:-3}

result() {
  local name=$1 ok=$2 detail=${3:-} now=${EPOCHREALTIME/./}
  now=${now:0:-3}
  local took=$((now - _last_ms))
  _last_ms=$now
  case $ok in true | 0 | ok | pass) ok=true ;; *) ok=false ;; esac
  local line
  line="{\"scenario\":\"$(_json_str "$TABBY_SCENARIO")\",\"name\":\"$(_json_str "$name")\",\"ok\":$ok,\"detail\":\"$(_json_str "$detail")\",\"ms\":$took}"
  echo "$line" >>"$TABBY_RESULTS"
  echo "TABBY-RESULT $line" >/dev/console
  echo "== $name: $([ "$ok" = true ] && echo ok || echo FAIL) ($took ms)"
  [ -n "$detail" ] && printf '%s\n' "$detail" | sed 's/^/   /'
  [ "$ok" = true ]
}

check() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1)
  rc=$?
  out=$(printf '%s' "$out" | tail -n 30)
  if [ $rc -eq 0 ]; then
    result "$name" true "$out"
  else
    result "$name" false "\$ $* -> exit $rc${out:+
$out}"
  fi
}

# load_modules MOD...   modprobe each (one assertion for all: which failed, if any). Most would load
# on demand anyway; loading them up front makes a missing one a clear failure instead of a side effect.
load_modules() {
  local m failed=()
  for m in "$@"; do modprobe "$m" 2>&1 || failed+=("$m"); done
  if [ ${#failed[@]} -eq 0 ]; then result "modprobe $*" true; else result "modprobe $*" false "failed: ${failed[*]}"; fi
}

# multinode SPEC...   runs the multi-node scenarios (test/helpers/scenarios.ts through
# test/qemu/multinode-runner.ts, bundled by the host into $TABBY_JOB/multinode.js) against $TABBY_BIN on
# a fresh simulated cluster, with the host's own node. Each check becomes one result line, named
# "SPEC: check". Returns the runner's exit status (0 when every check passed).
multinode() {
  if [ ! -r "$TABBY_JOB/multinode.js" ]; then
    result "multinode runner present" false "$TABBY_JOB/multinode.js is missing: the host bundles it before boot (harness.ts GUEST_BUNDLES)"
    return 1
  fi
  node "$TABBY_JOB/multinode.js" "$TABBY_BIN" "$@"
}
