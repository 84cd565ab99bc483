#!/usr/bin/env bash
# Closes the open FaceBlock epoch from cron: `faceblock epoch run` under a
# lock (one run at a time on this machine), its output appended to a log
# file line by line with a UTC timestamp, and its exit code passed through.
#
#   pipelines/cron/faceblock-epoch.sh [faceblock epoch run options...]
#
# Settings (environment):
#   FACEBLOCK_STORE       the store (as for faceblock; required)
#   FACEBLOCK_BIN         the coordinator binary (default: faceblock on PATH)
#   FACEBLOCK_CRON_LOG    the log file (default: ~/.local/state/faceblock/epoch.log)
#   FACEBLOCK_CRON_LOCK   the lock file (default: the log file + .lock)
#   FACEBLOCK_LOG_FORMAT  json: the log gets one JSON object per line (the
#                         coordinator's --log-format json, and the wrapper's
#                         own lines in the same shape); default: text
#   FACEBLOCK_LOG         the coordinator's log level (default warn)
#   FACEBLOCK_CRON_HOLD   a shell command run while holding the lock, before
#                         the coordinator (tests use it to hold the lock)
#
# Exit codes: the coordinator's (0 committed, or already committed; 1 error;
# 2 usage; 75 another coordinator claimed the epoch first), and
#   75  busy: another faceblock-epoch.sh holds the lock, so this one did
#       nothing. Like a lost race it means "someone else is closing this
#       epoch": not a failure; the log line says which of the two it was.
# Nothing is printed on stdout/stderr except when the run fails (exit other
# than 0 and 75), so cron mails only failures; a terminal sees every line.
set -uo pipefail

BUSY=75
FB=${FACEBLOCK_BIN:-faceblock}
LOG=${FACEBLOCK_CRON_LOG:-${HOME:-/tmp}/.local/state/faceblock/epoch.log}
LOCK=${FACEBLOCK_CRON_LOCK:-$LOG.lock}
FORMAT=${FACEBLOCK_LOG_FORMAT:-text}

mkdir -p "$(dirname "$LOG")" "$(dirname "$LOCK")" || exit 1

now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# One log line in the chosen format; a JSON line from the coordinator passes as it is.
line() {
  local level=$1 msg=$2 out
  if [ "$FORMAT" = json ]; then
    if [[ $msg == '{'* ]]; then
      out=$msg
    else
      out="{\"timestamp\":\"$(now)\",\"level\":\"$level\",\"fields\":{\"message\":$(json_string "$msg")},\"target\":\"faceblock-epoch.sh\"}"
    fi
  else
    out="$(now) $msg"
  fi
  printf '%s\n' "$out" >> "$LOG"
  if [ -t 2 ]; then printf '%s\n' "$out" >&2; fi
}

# Lines of a command's output into the log (stdout and stderr together, in order).
stamp() {
  local l
  while IFS= read -r l || [ -n "$l" ]; do line INFO "$l"; done
}

# The lock is on the open file: it is released when this script and the
# coordinator it started have both exited, whatever killed them.
exec 9>>"$LOCK" || { echo "faceblock-epoch.sh: cannot open the lock file $LOCK" >&2; exit 1; }
if ! flock -n 9; then
  holder=$(head -c 64 "$LOCK" 2>/dev/null | tr -dc '0-9')
  line WARN "busy: another faceblock-epoch.sh (pid ${holder:-unknown}) holds $LOCK; this run did nothing (exit $BUSY)"
  exit $BUSY
fi
printf '%s\n' "$$" > "$LOCK"

line INFO "start: $FB epoch run${*:+ $*} (pid $$, store ${FACEBLOCK_STORE:-unset})"
if [ -n "${FACEBLOCK_CRON_HOLD:-}" ]; then
  bash -c "$FACEBLOCK_CRON_HOLD" 2>&1 | stamp
fi
captured=$(mktemp "${TMPDIR:-/tmp}/faceblock-epoch.XXXXXX")
trap 'rm -f "$captured"' EXIT
"$FB" epoch run "$@" 2>&1 | tee "$captured" | stamp
code=${PIPESTATUS[0]}
case $code in
  0) what="done" ;;
  75) what="another coordinator claimed the epoch first; it commits it" ;;
  2) what="usage error" ;;
  *) what="failed" ;;
esac
line "$([ "$code" = 0 ] || [ "$code" = 75 ] && echo INFO || echo ERROR)" "exit $code: $what"
if [ "$code" != 0 ] && [ "$code" != 75 ] && [ ! -t 2 ]; then
  # For cron's mail: what failed, and where the log is.
  cat "$captured" >&2
  echo "faceblock-epoch.sh: exit $code ($what); log: $LOG" >&2
fi
exit "$code"
