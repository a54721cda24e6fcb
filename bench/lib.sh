# Shared by the gateway benchmarks (sourced, not run): builds the release binary, starts a
# loopback sshd and `custos serve`, and defines the transfer helpers.
# shellcheck shell=bash
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
API_PORT=$(free_port)
"${CARGO_TARGET_DIR:-target}"/release/custos serve --data-dir "$work/data" --listen 127.0.0.1:$API_PORT --admin-password bench-pw > "$work/custos.out" 2> "$work/custos.err" &
for _ in $(seq 100); do grep -q "listening on" "$work/custos.out" 2>/dev/null && break; sleep 0.1; done
CUSTOS_PID=$(pgrep -f "custos serve --data-dir $work/data" | head -1)
API="https://127.0.0.1:$API_PORT"; CURL=(curl -sk -u admin:bench-pw -H 'Content-Type: application/json')
# connection NAME PORT AUDIT_POLICY_KEY: a connection policy to the bench sshd, committed and listening.
connection() {
  "${CURL[@]}" -X POST -H 'Content-Length: 0' "$API/api/transaction" > /dev/null
  "${CURL[@]}" -d "{\"name\":\"$1\",\"network\":{\"clients\":[\"127.0.0.0/8\"],\"targets\":[\"127.0.0.1\"],\"ports\":[$2]},\"server_address\":{\"selection\":\"fix\",\"address\":\"127.0.0.1\",\"port\":$SSHD_PORT},\"policies\":{\"channel_policy\":\"-2\",\"audit_policy\":\"$3\"}}" "$API/api/configuration/ssh/connections" > /dev/null
  "${CURL[@]}" -X PUT -d '{"status":"commit"}' "$API/api/transaction" > /dev/null
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$2) 2>/dev/null && break; sleep 0.05; done
}

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

