#!/usr/bin/env bash
# seed_polling.sh -- a faithful rendering of how the seed skills dispatch agents into tmux, speaking
# contract v1 so the conformance suite can measure it. It is deliberately NOT fixed: every choice below
# is the one the seed documents (001-004) make, and the comment names the pitfall (000) it walks into.
#
#   session name   "agent-<task id>", targets "-t NAME" without "=" (prefix match)        [P7]
#   launch         new-session with the default shell, then send-keys a command line   [P1, P8, P10]
#                  "cd DIR && export ... && ARGV && echo __TASK_DONE__; echo $? > DONE"
#   agent_pid      #{pane_pid} read right after new-session: the shell, not the agent     [P1]
#   liveness       kill -0 on that PID, no start time                                    [P2]
#   completion     sentinel done-file (exit status as the shell saw it: a signal becomes
#                  128+N, "failed"), or a line "__TASK_DONE__" in the pane capture        [P3, P10]
#   result         read once with cat when the done-file appears; partial/empty accepted  [P5, P12]
#   heartbeat      age = `date +%s` - `stat -c %Y`, whole seconds, wall clock              [P6]
#   hang           stale + grace, then kill-session (the agent only gets SIGHUP)          [P9, P12]
#   loop           sleep-and-poll (the seed's 60 s poll scaled down: SEED_POLL_S, 0.25 s)  [P14]
#   tmux calls     no timeout; no check that tmux exists or is recent enough           [P13, P14]
#   temp files     /tmp/tmux-prompt-<name>.txt, /tmp/tmux-poll-<name>.log (seed 001)       [P11]
#   logs           pipe-pane 'cat >> LOG' (raw: ANSI kept), never turned off              [P3, P4]
#   send           load-buffer + paste-buffer (no -p, LF becomes CR) + send-keys Enter     [P8]
#   stop           kill-session only: no process-tree kill, setsid grandchildren survive  [P9]
#   models         not checked against DISPATCH_MODELS                                   [P15]
#
# Honoured (so tests stay isolated): DISPATCH_STATE_DIR, DISPATCH_TMUX_SOCKET (-S on every call).
set -u

SD=${DISPATCH_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/dispatch-kit}
SOCK=${DISPATCH_TMUX_SOCKET:-$SD/tmux.sock}
HARD_TMP=${DK_HARD_TMP:-/tmp} # still under /tmp, not TMPDIR; the kit's tests use a dir their run removes
POLL=${SEED_POLL_S:-0.25}
PY=${SEED_PYTHON:-python3}
TASKS=$SD/seed/tasks
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

T() { tmux -S "$SOCK" "$@"; }

JSON=0
die() { # exit_status code message
	if [ "$JSON" = 1 ]; then
		"$PY" -c 'import json,sys; print(json.dumps({"error": {"code": sys.argv[1], "message": sys.argv[2]}}))' "$2" "$3"
	fi
	echo "seed_polling: $3" >&2
	exit "$1"
}

# BSD/macOS date prints %N as a literal N: whole seconds there (the events' wall time must parse).
now() { local t; t=$(date +%s.%N); case $t in *N) echo "${t%.N}" ;; *) echo "$t" ;; esac; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; } # float a >= b
mono() { if [ -r /proc/uptime ]; then cut -d' ' -f1 /proc/uptime; else date +%s; fi; }

is_terminal() { case "$1" in succeeded | failed | crashed | hung | timed_out | stopped) return 0 ;; esac; return 1; }

set_state() { # dir state reason  (plain redirections: not atomic, as in the seed)
	local d=$1 n
	echo "$2 $3" >"$d/state"
	n=$(($(wc -l 2>/dev/null <"$d/events" || echo 0) + 1))
	printf '%s|%s|%s|%s|%s\n' "$n" "$2" "$3" "$(mono)" "$(now)" >>"$d/events"
	if is_terminal "$2"; then now >"$d/ended"; fi
}

read_state() { cut -d' ' -f1 "$1/state" 2>/dev/null; }

# One task as a JSON object, from the files in its directory.
TASK_PY='
import json, os, sys
def rd(d, n):
    try:
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None
def obj(d):
    m = json.loads(rd(d, "meta.json") or "{}")
    st = (rd(d, "state") or "starting ").split(" ", 1)
    code = rd(d, "done")
    try:
        code = int(code.strip()) if code is not None and code.strip() else None
    except ValueError:
        code = None
    res = rd(d, "result.seen")
    try:
        res = json.loads(res) if res else None
    except ValueError:
        res = None
    ended = rd(d, "ended")
    return {"task_id": m.get("task_id"), "state": st[0] or "starting",
            "reason": (st[1].strip() or None) if len(st) > 1 else None,
            "exit_code": code, "signal": None, "result": res, "session": m.get("session"),
            "wrapper_pid": None, "agent_pid": m.get("agent_pid"), "agent_started_at": None,
            "log_path": m.get("log_path"), "model": m.get("model"), "argv": m.get("argv", []),
            "label": m.get("label"), "started_at": m.get("started_at"),
            "ended_at": float(ended) if ended and ended.strip() else None}
mode = sys.argv[1]
if mode == "one":
    print(json.dumps(obj(sys.argv[2])))
elif mode == "list":
    ds = [os.path.join(sys.argv[2], x) for x in os.listdir(sys.argv[2])] if os.path.isdir(sys.argv[2]) else []
    objs = [obj(d) for d in ds if os.path.exists(os.path.join(d, "meta.json"))]
    print(json.dumps(sorted(objs, key=lambda o: o["started_at"] or 0)))
elif mode == "events":
    out = []
    for line in (rd(sys.argv[2], "events") or "").splitlines():
        p = line.split("|")
        if len(p) == 5:
            out.append({"seq": int(p[0]), "state": p[1], "reason": p[2] or None,
                        "mono": float(p[3]), "wall": float(p[4]), "detail": None})
    print(json.dumps(out))
elif mode == "logs":
    d = sys.argv[2]
    m = json.loads(rd(d, "meta.json") or "{}")
    text = rd(d, "output.log") or ""
    print(json.dumps({"task_id": m.get("task_id"), "log_path": m.get("log_path"), "text": text}))
'

task_dir() { echo "$TASKS/$1"; }
need_task() { [ -f "$(task_dir "$1")/meta.json" ] || die 2 unknown_task "unknown task: $1"; }
print_task() { "$PY" -c "$TASK_PY" one "$(task_dir "$1")"; }

finish_session() { # dir: the seed's cleanup: "after a task completes, kill the tmux session"
	local name
	name=$(cat "$1/session")
	T kill-session -t "$name" 2>/dev/null
	rm -f "$HARD_TMP/tmux-prompt-$name.txt" "$HARD_TMP/tmux-poll-$name.log" # tidier than the seed, which keeps them
}

# The seed's background poll: done-file first, then pane capture, then kill -0, then the clock.
monitor() {
	local id=$1 d name pid start hb age stale grace life cap prev="" st
	d=$(task_dir "$id")
	name=$(cat "$d/session")
	pid=$(cat "$d/pane_pid")
	start=$(date +%s)
	stale=${DISPATCH_STALE_AFTER_S:-0}
	grace=${DISPATCH_GRACE_S:-30}
	life=${DISPATCH_MAX_LIFETIME_S:-0}
	while :; do
		st=$(read_state "$d")
		if is_terminal "$st"; then exit 0; fi
		if [ -f "$d/done" ]; then
			cat "$d/result.json" >"$d/result.seen" 2>/dev/null
			if [ "$(cat "$d/done")" = 0 ]; then set_state "$d" succeeded exited; else set_state "$d" failed exited; fi
			finish_session "$d"
			exit 0
		fi
		cap=$(T capture-pane -p -t "$name" -S -200 2>/dev/null)
		if printf '%s\n' "$cap" | grep -qx '__TASK_DONE__'; then
			cat "$d/result.json" >"$d/result.seen" 2>/dev/null
			echo 0 >"$d/done"
			set_state "$d" succeeded exited
			finish_session "$d"
			exit 0
		fi
		if ! T has-session -t "$name" 2>/dev/null; then
			set_state "$d" crashed session_lost
			exit 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			set_state "$d" crashed exited
			finish_session "$d"
			exit 0
		fi
		if [ "$life" != 0 ] && ge "$(($(date +%s) - start))" "$life"; then
			finish_session "$d"
			set_state "$d" timed_out max_lifetime
			exit 0
		fi
		hb=$(cat "$d/hb_path")
		if [ "$stale" != 0 ] && [ -f "$hb" ]; then
			age=$(($(date +%s) - $(stat -c %Y "$hb" 2>/dev/null || stat -f %m "$hb")))
			if ge "$age" "$(awk -v a="$stale" -v b="$grace" 'BEGIN { print a + b }')"; then
				finish_session "$d"
				set_state "$d" hung heartbeat_stale
				exit 0
			elif ge "$age" "$stale"; then
				[ "$st" = stalled ] || set_state "$d" stalled heartbeat_stale
			elif [ "$st" != running ]; then
				set_state "$d" running heartbeat
			fi
		fi
		# stall hint from the seed: identical pane captures across polls (recorded, never acted on)
		[ "$cap" = "$prev" ] && echo "$(now) pane unchanged" >>"$HARD_TMP/tmux-poll-$name.log"
		prev=$cap
		sleep "$POLL"
	done
}

cmd_start() {
	local id="" cwd="" prompt="" label="" model="" has_label=0 has_model=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--task-id) id=${2-}; shift 2 || die 2 bad_usage "--task-id needs a value" ;;
		--cwd) cwd=${2-}; shift 2 || die 2 bad_usage "--cwd needs a value" ;;
		--prompt-file) prompt=${2-}; shift 2 || die 2 bad_usage "--prompt-file needs a value" ;;
		--label) label=${2-}; has_label=1; shift 2 || die 2 bad_usage "--label needs a value" ;;
		--model) model=${2-}; has_model=1; shift 2 || die 2 bad_usage "--model needs a value" ;;
		--) shift; break ;;
		*) die 2 bad_usage "unexpected argument: $1" ;;
		esac
	done
	[ $# -gt 0 ] || die 2 bad_argv "no agent command given"
	# the seed sanitises names to [A-Za-z0-9._-]
	[[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die 2 bad_task_id "bad task id: $id"
	[ -r "$prompt" ] && [ -f "$prompt" ] || die 2 bad_prompt_file "cannot read prompt file: $prompt"
	local d name
	d=$(task_dir "$id")
	[ -e "$d" ] && die 2 duplicate_task_id "task exists: $id"
	mkdir -p "$d" || die 3 state_dir_unusable "cannot create $d"
	name="agent-$id"
	echo "$name" >"$d/session"
	# seed 001: "write the prompt to a temp file" -- under a hard-coded /tmp
	local pfile="$HARD_TMP/tmux-prompt-$name.txt"
	mkdir -p "$HARD_TMP"
	cat "$prompt" >"$pfile"
	echo "$d/heartbeat" >"$d/hb_path"
	set_state "$d" starting launched
	T new-session -d -s "$name" -c "$cwd" -e HISTFILE=/dev/null || die 1 internal "tmux new-session failed"
	local pane_pid
	pane_pid=$(T list-panes -t "$name" -F '#{pane_pid}' | head -n1)
	echo "$pane_pid" >"$d/pane_pid"
	T pipe-pane -o -t "$name" "cat >> $(printf %q "$d/output.log")"
	local line
	line="cd $(printf %q "$cwd") && export DISPATCH_TASK_ID=$(printf %q "$id")"
	line+=" DISPATCH_PROMPT_FILE=$(printf %q "$pfile") DISPATCH_RESULT_FILE=$(printf %q "$d/result.json")"
	line+=" DISPATCH_HEARTBEAT_FILE=$(printf %q "$d/heartbeat")"
	[ "$has_model" = 1 ] && line+=" DISPATCH_MODEL=$(printf %q "$model")"
	line+=" && $(printf '%q ' "$@")&& echo __TASK_DONE__; echo \$? > $(printf %q "$d/done")"
	# wait for the shell's prompt: keys typed before it are echoed by the tty, then may be dropped by the
	# starting shell (3 of 30 lines so under CI's load), a start that never runs, which is no flaw aimed at
	local waited=0 screen
	while [ "$waited" -lt 400 ]; do
		screen=$(T capture-pane -p -t "$name" 2>/dev/null) || break # gone: the start fails on its own
		[ -n "$(printf %s "$screen" | tr -d '[:space:]')" ] && break
		sleep 0.05
		waited=$((waited + 1))
	done
	T send-keys -t "$name" "$line" Enter
	"$PY" -c '
import json, sys, time
a = sys.argv
meta = {"task_id": a[2], "session": a[3], "agent_pid": int(a[4]) if a[4].isdigit() else None,
        "log_path": a[5], "label": a[7] if a[6] == "1" else None,
        "model": a[9] if a[8] == "1" else None, "argv": a[10:], "started_at": time.time()}
with open(a[1], "w") as f:
    json.dump(meta, f)
' "$d/meta.json" "$id" "$name" "$pane_pid" "$d/output.log" "$has_label" "$label" "$has_model" "$model" "$@"
	set_state "$d" running launched
	# setsid is util-linux's (macOS has none): there the monitor is only nohup'ed, it still outlives start
	local detach=(nohup)
	command -v setsid >/dev/null 2>&1 && detach=(setsid nohup)
	("${detach[@]}" bash "$SELF" _monitor "$id" </dev/null >/dev/null 2>&1 &
	echo $! >"$d/monitor.pid")
	"$PY" -c 'import json,sys; print(json.dumps({"task_id": sys.argv[1], "session": sys.argv[2], "state": "running"}))' "$id" "$name"
}

cmd_status() {
	local id=$1 d st name
	need_task "$id"
	d=$(task_dir "$id")
	st=$(read_state "$d")
	if ! is_terminal "$st"; then
		name=$(cat "$d/session")
		# seed 002: "tmux has-session -t <task> && echo running || echo finished/gone"
		if ! T has-session -t "$name" 2>/dev/null; then
			[ -f "$d/done" ] || set_state "$d" crashed session_lost
		fi
	fi
	print_task "$id"
}

cmd_wait() {
	local id="" timeout="" d st t0
	while [ $# -gt 0 ]; do
		case "$1" in
		--timeout) timeout=${2-}; shift 2 || die 2 bad_usage "--timeout needs a value" ;;
		*) id=$1; shift ;;
		esac
	done
	need_task "$id"
	d=$(task_dir "$id")
	t0=$(date +%s.%N)
	while :; do
		st=$(read_state "$d")
		if is_terminal "$st"; then print_task "$id"; exit 0; fi
		if [ -n "$timeout" ] && ge "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')" "$timeout"; then
			print_task "$id"
			exit 124
		fi
		sleep "$POLL"
	done
}

cmd_stop() {
	local id=$1 d st name mp
	need_task "$id"
	d=$(task_dir "$id")
	st=$(read_state "$d")
	if ! is_terminal "$st"; then
		name=$(cat "$d/session")
		mp=$(cat "$d/monitor.pid" 2>/dev/null)
		[ -n "$mp" ] && kill "$mp" 2>/dev/null # by PID alone, as the seed would
		T kill-session -t "$name" 2>/dev/null
		rm -f "$HARD_TMP/tmux-prompt-$name.txt" "$HARD_TMP/tmux-poll-$name.log"
		set_state "$d" stopped stop_requested
	fi
	print_task "$id"
}

cmd_send() {
	local id="" file="" d name
	while [ $# -gt 0 ]; do
		case "$1" in
		--text-file) file=${2-}; shift 2 || die 2 bad_usage "--text-file needs a value" ;;
		*) id=$1; shift ;;
		esac
	done
	need_task "$id"
	[ -r "$file" ] && [ -f "$file" ] || die 2 bad_text_file "cannot read text file: $file"
	d=$(task_dir "$id")
	is_terminal "$(read_state "$d")" && die 2 not_running "task has ended: $id"
	name=$(cat "$d/session")
	# seed 001: load-buffer + paste-buffer, sleep, then send-keys Enter
	T load-buffer "$file" || die 1 internal "load-buffer failed"
	T paste-buffer -t "$name"
	sleep 0.1
	T send-keys -t "$name" Enter
	"$PY" -c 'import json,os,sys; print(json.dumps({"task_id": sys.argv[1], "delivered": True, "bytes": os.path.getsize(sys.argv[2])}))' "$id" "$file"
}

cmd_reap() {
	# seed 002/P9: list sessions with our prefix; kill those whose monitor is gone
	local s id d mp out=()
	while read -r s; do
		[ -n "$s" ] || continue
		id=${s#agent-}
		d=$(task_dir "$id")
		mp=$(cat "$d/monitor.pid" 2>/dev/null)
		if [ -z "$mp" ] || ! kill -0 "$mp" 2>/dev/null; then
			T kill-session -t "$s" 2>/dev/null
			if [ -f "$d/meta.json" ]; then
				is_terminal "$(read_state "$d")" || set_state "$d" crashed supervisor_lost
				out+=("$id" "$s" supervisor_lost)
			else
				out+=("" "$s" orphan_session)
			fi
		fi
	done < <(T list-sessions -F '#{session_name}' 2>/dev/null | grep '^agent-')
	"$PY" -c '
import json, sys
a = sys.argv[1:]
print(json.dumps({"reaped": [{"task_id": a[i] or None, "session": a[i + 1], "reason": a[i + 2]}
                             for i in range(0, len(a), 3)]}))' "${out[@]+"${out[@]}"}"
}

cmd_logs() {
	local id=$1 d
	need_task "$id"
	d=$(task_dir "$id")
	if [ "$JSON" = 1 ]; then "$PY" -c "$TASK_PY" logs "$d"; else cat "$d/output.log" 2>/dev/null; fi
}

main() {
	local verb=${1-}
	[ $# -gt 0 ] && shift
	if [ "${1-}" = --json ]; then JSON=1; shift; fi
	case "$verb" in
	_monitor) monitor "$1" ;;
	capabilities)
		"$PY" -c 'import json; print(json.dumps({"contract": "1", "implementation": "seed_polling", "version": "0.1", "tmux_min": "2.6", "capabilities": ["send", "events", "logs", "reap", "heartbeat", "max_lifetime", "models"]}))'
		;;
	start) cmd_start "$@" ;;
	status) [ $# -ge 1 ] || die 2 bad_usage "status needs a task id"; cmd_status "$1" ;;
	wait) cmd_wait "$@" ;;
	stop) [ $# -ge 1 ] || die 2 bad_usage "stop needs a task id"; cmd_stop "$1" ;;
	list) "$PY" -c "$TASK_PY" list "$TASKS" ;;
	reap) cmd_reap ;;
	logs) [ $# -ge 1 ] || die 2 bad_usage "logs needs a task id"; cmd_logs "$1" ;;
	send) cmd_send "$@" ;;
	events) [ $# -ge 1 ] || die 2 bad_usage "events needs a task id"; need_task "$1"; "$PY" -c "$TASK_PY" events "$(task_dir "$1")" ;;
	*) die 2 bad_usage "unknown verb: $verb" ;;
	esac
}

main "$@"
