#!/usr/bin/env bash
# make demo: one real Claude Code session under the sensor, its events
# printed. Needs root, npm and Go; takes about a minute the first time
# (npm install of the pinned Claude Code, cached in tests/e2e/.cache).
set -euo pipefail

CLAUDE_VERSION=2.1.332
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${BIN:-bin/lineaged}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (the sensor loads BPF programs)" >&2; exit 1; }
[ -x "$bin" ] || { echo "demo: $bin missing: run make build" >&2; exit 1; }

cache=${LINEAGED_E2E_CACHE:-$repo/tests/e2e/.cache}/claude-code-$CLAUDE_VERSION
claude=$cache/node_modules/@anthropic-ai/claude-code/bin/claude.exe
if ! head -c4 "$claude" 2>/dev/null | grep -q ELF; then
	echo "demo: installing @anthropic-ai/claude-code@$CLAUDE_VERSION into $cache"
	mkdir -p "$cache"
	npm install --no-audit --no-fund --prefix "$cache" "@anthropic-ai/claude-code@$CLAUDE_VERSION" >/dev/null
fi

work=$(mktemp -d /tmp/lineaged-demo.XXXXXX)
chmod 700 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
go build -o "$work/fakeapi" ./tests/fakeapi/cmd/fakeapi
go build -o "$work/prettyevents" ./tests/e2e/prettyevents
mkdir -p "$work/home" "$work/project"
echo "hello from the demo" > "$work/project/notes.txt"

# A loopback listener for the session's connection.
python3 -c 'import socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(8); print(s.getsockname()[1], flush=True)
while True:
    c,_=s.accept(); c.close()' > "$work/port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

cat > "$work/script.json" <<JSON
[{"name":"demo","turns":[
 {"tool":"Bash","input":{"command":"wc -l $work/project/notes.txt > $work/project/count.txt && (exec 3<>/dev/tcp/127.0.0.1/$port) && uname -r","description":"count lines, open a connection"}},
 {"tool":"Read","input":{"file_path":"$work/project/notes.txt"}},
 {"tool":"Write","input":{"file_path":"$work/project/summary.md","content":"# Summary\n\nThe notes have one line.\n"}},
 {"text":"Done: counted the lines, read the notes and wrote a summary."}]}]
JSON
"$work/fakeapi" -script "$work/script.json" > "$work/api.url" 2> "$work/api.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/api.url" ] && break; sleep 0.1; done

events=$work/events.jsonl
"$bin" run --output "$events" 2> "$work/lineaged.log" &
sensor=$!
pids+=($sensor)
# Ready once it reports its start (a sensor.start event or its log line).
started() { grep -q '"sensor.start"' "$events" 2>/dev/null || grep -q 'msg="sensor started"' "$work/lineaged.log"; }
for _ in $(seq 600); do started && break; sleep 0.1; done
started || { echo "demo: the sensor did not start:" >&2; cat "$work/lineaged.log" >&2; exit 1; }

echo "demo: running Claude Code $CLAUDE_VERSION against a scripted API (a Bash, a Read and a Write tool call)"
cd "$work/project"
env -i HOME="$work/home" PATH=/usr/local/bin:/usr/bin:/bin \
	ANTHROPIC_BASE_URL="$(head -1 "$work/api.url")" ANTHROPIC_API_KEY=sk-ant-demo-not-a-key \
	IS_SANDBOX=1 DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
	"$claude" -p "Count the lines of notes.txt and summarise it" --dangerously-skip-permissions &
claude_pid=$!
wait "$claude_pid"
cd "$repo"

# The session's last event is the claude process's exit: wait for it.
for _ in $(seq 300); do
	grep '"process.exit"' "$events" | grep -q "\"pid\":$claude_pid," && break
	sleep 0.1
done
kill -INT "$sensor"
wait "$sensor" || true

echo
echo "demo: $(wc -l < "$events") events written to $events; the Claude Code session's, as a person reads them:"
echo
"$work/prettyevents" -pid "$claude_pid" -quiet "$events"
echo
echo "demo: one event in full (the Bash tool's exec of wc):"
grep '"process.exec"' "$events" | grep '"toolu_fake_demo_00"' | grep '"wc"' | head -1 | python3 -m json.tool || true
trap - EXIT
cleanup
echo "demo: files kept in $work"
