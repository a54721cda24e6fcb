#!/usr/bin/env bash
# Benchmark of tamper-evident, encrypted trails (not a CI test). In one run on this machine:
#   gateway throughput of a transfer each way with encryption (output and keystrokes to
#   different RSA-3072 certificates), ECDSA signing and built-in RFC 3161 time-stamps every 10 s,
#   as a ratio to recording without them (target >= 0.90), rounds interleaved; the gateway's
#   CPU-seconds per GiB for both; and `custos trail verify` speed in MB/s on the largest sealed
#   trail, from a cold page cache, without and with the decryption keys.
# Needs root. Usage: bench/evidence.sh   (BENCH_MIB=1024, BENCH_ROUNDS=3 by default)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${BENCH_ROUNDS:-3}

pki() { openssl req -x509 -nodes -days 2 -subj "/CN=$1" -keyout "$work/$1.key" -out "$work/$1.crt" "${@:2}" 2>/dev/null; }
openssl ecparam -name prime256v1 -out "$work/p256"
pki output-auditor -newkey rsa:3072
pki keystroke-auditor -newkey rsa:3072
pki gateway-signer -newkey "ec:$work/p256"
pem() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
key_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
"${CURL[@]}" -X POST -H 'Content-Length: 0' "$API/api/transaction" > /dev/null
SIGNER=$("${CURL[@]}" -d "{\"certificate\":$(pem "$work/gateway-signer.crt"),\"private_key\":$(pem "$work/gateway-signer.key")}" \
  "$API/api/configuration/x509" | key_of)
POLICY=$("${CURL[@]}" -d "{\"name\":\"evidence\",
  \"encryption\":{\"enabled\":true,\"certificates\":[{\"certificate\":$(pem "$work/output-auditor.crt")}],
    \"different_certificates_for_upstream\":{\"enabled\":true,\"certificates\":[{\"certificate\":$(pem "$work/keystroke-auditor.crt")}]}},
  \"signing\":{\"enabled\":true,\"x509_identity\":\"$SIGNER\"},
  \"timestamping\":{\"enabled\":true,\"server\":{\"selection\":\"local\"}},
  \"signing_and_timestamping_interval\":10}" "$API/api/configuration/policies/audit_policies" | key_of)
"${CURL[@]}" -X PUT -d '{"status":"commit"}' "$API/api/transaction" > /dev/null
PLAIN_PORT=$(free_port); connection plain "$PLAIN_PORT" -1
SEALED_PORT=$(free_port); connection sealed "$SEALED_PORT" "$POLICY"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; ${MIB} MiB per transfer, $ROUNDS rounds; client cipher $CIPHER"
for direction in upload download; do
  declare -A secs=([plain]=0 [sealed]=0) cpu=([plain]=0 [sealed]=0)
  for _ in $(seq "$ROUNDS"); do
    for kind in plain sealed; do
      port=PLAIN_PORT; [[ $kind == sealed ]] && port=SEALED_PORT
      before=$(cpu_ticks)
      t=$(timed "$direction" "${!port}")
      after=$(cpu_ticks)
      secs[$kind]=$(echo "${secs[$kind]} + $t" | bc -l)
      cpu[$kind]=$(echo "${cpu[$kind]} + ($after - $before) / $TICK" | bc -l)
    done
  done
  gib=$(echo "$MIB * $ROUNDS / 1024" | bc -l)
  printf '%-8s recording only %6.1f MB/s, %.2f CPU-s/GiB; encrypted+signed+stamped %6.1f MB/s, %.2f CPU-s/GiB; ratio %.2f (target >= 0.90)\n' \
    "$direction" "$(echo "$MIB*$ROUNDS*1.048576/${secs[plain]}" | bc -l)" "$(echo "${cpu[plain]}/$gib" | bc -l)" \
    "$(echo "$MIB*$ROUNDS*1.048576/${secs[sealed]}" | bc -l)" "$(echo "${cpu[sealed]}/$gib" | bc -l)" \
    "$(echo "${secs[plain]}/${secs[sealed]}" | bc -l)"
done

# The largest version-2 (sealed) trail.
trail=$(python3 - "$work/data/trails" <<'PY'
import os, sys
d = sys.argv[1]
best = max((os.path.getsize(os.path.join(d, f)), f) for f in os.listdir(d)
           if open(os.path.join(d, f), "rb").read(10)[8:10] == b"\x02\x00")
print(os.path.join(d, best[1]))
PY
)
size=$(stat -c %s "$trail")
CUSTOS="${CARGO_TARGET_DIR:-target}/release/custos"
verify_speed() {
  sync; echo 3 > /proc/sys/vm/drop_caches
  local start end
  start=$(date +%s.%N)
  "$CUSTOS" trail verify "$trail" "$@" > "$work/verify.out" || { cat "$work/verify.out"; exit 1; }
  end=$(date +%s.%N)
  echo "$size / 1000000 / ($end - $start)" | bc -l
}
printf 'trail verify (%.0f MB, cold cache): chain, seals and tokens %.0f MB/s; with both keys, every record decrypted %.0f MB/s\n' \
  "$(echo "$size/1000000" | bc -l)" "$(verify_speed)" \
  "$(verify_speed --key "$work/output-auditor.key" --key "$work/keystroke-auditor.key")"
grep -E "^(seals|proven)" "$work/verify.out"
