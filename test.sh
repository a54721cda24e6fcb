#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and black-box end-to-end tests that start
# the real `custos` binary. Installs what it needs on a fresh Debian machine. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
# Real peers the tests use, as "command:Debian package".
need=()
for pair in openssl:openssl ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server curl:curl asciinema:asciinema script:bsdutils xauth:xauth /usr/bin/python3:python3 /usr/sbin/smbd:samba smbclient:smbclient rsync:rsync ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
