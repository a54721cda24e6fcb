#!/usr/bin/env bash
# Benchmark of the SSH gateway (not a CI test). Measures, in one run on this machine, direct
# OpenSSH to a local sshd against the same through Custos (recording on):
#   throughput of a transfer each way (ratio to direct), the gateway's CPU-seconds per GiB,
#   recording size per GiB of payload, and added connect + auth + exec time.
# Needs root (sshd, a test account). Usage: bench/ssh.sh   (BENCH_MIB=1024 by default)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source bench/lib.sh
GW_PORT=$(free_port); connection bench "$GW_PORT" -1

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
