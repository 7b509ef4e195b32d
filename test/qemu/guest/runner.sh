#!/bin/bash
# PID 1 of the qemu guest after switch_root (see init). Runs each scenario named in job.env, one after
# another, each in its own bash with lib.sh sourced, its output in <job>/<scenario>.log, under a
# timeout; then powers the guest off. Result lines go to <job>/results-<scenario>.jsonl and to the
# console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LANG=C.UTF-8
JOB=/run/tabby-job
. "$JOB/job.env"
export TABBY_REPO TABBY_JOB=$JOB
export TABBY_BIN=${TABBY_BIN:-$TABBY_REPO/dist/tabby}
GUEST=$TABBY_REPO/test/qemu/guest

now_ms() { local u; read -r u _ </proc/uptime; echo $(( ${u%.*} * 1000 + 10#${u#*.} * 10 )); }

mount -t tmpfs -o mode=0755 tmpfs /var/log 2>/dev/null

# The host kills qemu at its timeout; this watchdog powers the guest off by itself a little later,
# in case the host process died and left qemu behind.
if [ -n "${TABBY_GUEST_DEADLINE:-}" ]; then
  (sleep "$TABBY_GUEST_DEADLINE"; echo "TABBY-FATAL guest deadline of $TABBY_GUEST_DEADLINE s passed"; echo o >/proc/sysrq-trigger) &
fi
echo "TABBY-BOOTED {\"uptime_ms\":$(now_ms),\"kernel\":\"$(uname -r)\"}"

for s in $TABBY_SCENARIOS; do
  file=$TABBY_REPO/test/qemu/scenarios/$s.sh
  started=$(now_ms)
  echo "TABBY-SCENARIO-START $s"
  export TABBY_SCENARIO=$s SCRATCH=/tmp/scenario-$s TABBY_RESULTS=$JOB/results-$s.jsonl
  mkdir -p "$SCRATCH"
  if [ -r "$file" ]; then
    (cd "$SCRATCH" && exec timeout -k 5 "${TABBY_SCENARIO_TIMEOUT:-120}" bash -c '. "$1"; . "$2"' scenario "$GUEST/lib.sh" "$file") \
      >"$JOB/$s.log" 2>&1 </dev/null
    rc=$?
  else
    echo "no scenario file $file" >"$JOB/$s.log"
    rc=127
  fi
  line="{\"scenario\":\"$s\",\"rc\":$rc,\"ms\":$(( $(now_ms) - started ))}"
  echo "$line" >>"$JOB/scenarios.jsonl"
  echo "TABBY-SCENARIO-END $line"
done

echo "TABBY-DONE"
sync
# Power off. PID 1 must not exit meanwhile (that panics), and nothing may be run from the 9p root
# any more (it goes away): wait on a FIFO on tmpfs with a bash builtin.
mkfifo /run/tabby-poweroff
echo o >/proc/sysrq-trigger
while :; do read -r -t 60 _ <>/run/tabby-poweroff; done
