#!/usr/bin/env bash
# Benchmark of the SSH gateway (not a CI test). Measures, in one run on this machine, direct
# OpenSSH to a local sshd against the same through Custos (recording on):
#   throughput of a transfer each way (ratio to direct), the gateway's CPU-seconds per GiB,
#   recording size per GiB of payload, and added connect + auth + exec time.
# Needs root (sshd, a test account). Usage: bench/ssh.sh   (BENCH_MIB=1024 by default)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
MIB=${BENCH_MIB:-1024}
for pair in /usr/sbin/sshd:openssh-server hyperfine:hyperfine curl:curl bc:bc; do
  command -v "${pair%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${pair#*:}"; }
done
cargo build --release -q -p custos
USER_NAME=custos-e2e; PASS='E2e-test-passw0rd'
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME"
echo "$USER_NAME:$PASS" | chpasswd

work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
SSHD_PORT=$(free_port)
cat > "$work/sshd_config" <<CFG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $work/hostkey
PidFile $work/sshd.pid
UsePAM no
PasswordAuthentication yes
StrictModes no
LogLevel ERROR
MaxStartups 100:30:200
CFG
/usr/sbin/sshd -D -f "$work/sshd_config" & 
API_PORT=$(free_port); GW_PORT=$(free_port)
"${CARGO_TARGET_DIR:-target}"/release/custos serve --data-dir "$work/data" --listen 127.0.0.1:$API_PORT --admin-password bench-pw > "$work/custos.out" 2> "$work/custos.err" &
for _ in $(seq 100); do grep -q "listening on" "$work/custos.out" 2>/dev/null && break; sleep 0.1; done
CUSTOS_PID=$(pgrep -f "custos serve --data-dir $work/data" | head -1)
API="https://127.0.0.1:$API_PORT"; CURL=(curl -sk -u admin:bench-pw -H 'Content-Type: application/json')
"${CURL[@]}" -X POST -H 'Content-Length: 0' "$API/api/transaction" > /dev/null
"${CURL[@]}" -d "{\"name\":\"bench\",\"network\":{\"clients\":[\"127.0.0.0/8\"],\"targets\":[\"127.0.0.1\"],\"ports\":[$GW_PORT]},\"server_address\":{\"selection\":\"fix\",\"address\":\"127.0.0.1\",\"port\":$SSHD_PORT},\"policies\":{\"channel_policy\":\"-2\",\"audit_policy\":\"-1\"}}" "$API/api/configuration/ssh/connections" > /dev/null
"${CURL[@]}" -X PUT -d '{"status":"commit"}' "$API/api/transaction" > /dev/null
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$GW_PORT) 2>/dev/null && break; sleep 0.05; done

printf '#!/bin/sh\necho "%s"\n' "$PASS" > "$work/askpass"; chmod +x "$work/askpass"
export SSH_ASKPASS="$work/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0
CIPHER=${BENCH_CIPHER:-aes256-gcm@openssh.com}
SSH=(ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
     -o PreferredAuthentications=password -o PubkeyAuthentication=no -c "$CIPHER" -l "$USER_NAME"
     -o KexAlgorithms=curve25519-sha256)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$CUSTOS_PID/stat"; }
TICK=$(getconf CLK_TCK)
trail_bytes() { du -sb "$work/data/trails" | cut -f1; }

# Times a transfer; a failed transfer stops the benchmark (no number is better than a wrong one).
timed() {
  local start end
  start=$(date +%s.%N)
  if ! "$@" > /dev/null 2> "$work/last.err"; then
    echo "transfer failed: $*" >&2; cat "$work/last.err" >&2; tail -5 "$work/custos.err" >&2; exit 1
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
upload() { head -c "${MIB}M" /dev/zero | "${SSH[@]}" -p "$1" 127.0.0.1 'cat > /dev/null'; }
download() { "${SSH[@]}" -p "$1" 127.0.0.1 "head -c ${MIB}M /dev/zero" > /dev/null; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; payload ${MIB} MiB per transfer; client cipher $CIPHER"
echo "(the gateway's legs use the cipher russh negotiates; the client-side leg uses $CIPHER)"
# Busy and total jiffies of the whole machine (all cores), to see how much CPU is left over.
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
for direction in upload download; do
  read -r busy0 all0 < <(machine_ticks)
  direct=$(timed $direction "$SSHD_PORT")
  read -r busy1 all1 < <(machine_ticks)
  printf '%-8s direct transfer kept the machine %.0f%% busy (%d cores)\n' "$direction" \
    "$(echo "100 * ($busy1 - $busy0) / ($all1 - $all0)" | bc -l)" "$(nproc)"
  before=$(cpu_ticks); bytes_before=$(trail_bytes)
  if [[ -n ${BENCH_PROFILE:-} ]]; then  # BENCH_PROFILE=dir: perf profile of the gateway per direction
    perf record -q ${BENCH_PERF_ARGS:--g} -p "$CUSTOS_PID" -o "$BENCH_PROFILE/$direction.perf" 2>/dev/null & perf_pid=$!; sleep 0.5
  fi
  via=$(timed $direction "$GW_PORT")
  [[ -n ${BENCH_PROFILE:-} ]] && { kill -INT $perf_pid; wait $perf_pid || true; }
  after=$(cpu_ticks); bytes_after=$(trail_bytes)
  cpu=$(echo "($after - $before) / $TICK" | bc -l)
  printf '%-8s direct %6.1f MB/s  via Custos %6.1f MB/s  ratio %.2f (target >= 0.90)\n' "$direction" \
    "$(echo "$MIB*1.048576/$direct" | bc -l)" "$(echo "$MIB*1.048576/$via" | bc -l)" "$(echo "$direct/$via" | bc -l)"
  printf '         gateway CPU %.2f s per GiB (target <= 1.0); recording %.4f x payload (target <= 1.02)\n' \
    "$(echo "$cpu * 1024 / $MIB" | bc -l)" "$(echo "($bytes_after - $bytes_before) / ($MIB*1048576)" | bc -l)"
done
echo "connect + auth + exec (hyperfine, 20 runs each):"
hyperfine -N -w 2 -r 20 --export-json "$work/latency.json" \
  "${SSH[*]} -p $SSHD_PORT 127.0.0.1 true" "${SSH[*]} -p $GW_PORT 127.0.0.1 true" 2>/dev/null | grep -E "Time|±" | head -4
python3 - "$work/latency.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
direct, via = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"median direct {direct:.1f} ms, via Custos {via:.1f} ms, added {via - direct:.1f} ms (target <= 5 ms)")
PY
SSH_CMD=$(IFS=$'\x1f'; echo "${SSH[*]}"); export SSH_CMD
python3 bench/ssh_sessions.py keystroke "$SSHD_PORT" "$GW_PORT"
if [[ ${BENCH_IDLE_SESSIONS:-500} -gt 0 ]]; then
  python3 bench/ssh_sessions.py idle "$GW_PORT" "$CUSTOS_PID" "${BENCH_IDLE_SESSIONS:-500}" "${BENCH_IDLE_ROUNDS:-2}"
fi
if [[ ${BENCH_DOWNLOADS:-100} -gt 0 ]]; then
  python3 bench/ssh_sessions.py downloads "$GW_PORT" "${BENCH_DOWNLOADS:-100}" "$MIB" "$work/data/trails"
fi
