#!/usr/bin/env bash
# Benchmark of archive jobs (not a CI test): Custos archiving 100,000 small trails (2-8 KiB) and
# 4 large ones (256 MiB) to an SMB share (a real smbd on loopback) and to an NFS-style directory,
# as a ratio to smbclient (tar mode, mput), rsync and cp copying the same files in the same run.
# Needs root and samba (smbd, smbclient), rsync. Arguments go to the benchmark:
#   bench/archive.sh                                   the full run (~3 GB free under /work)
#   bench/archive.sh --small-count 2000 --large-count 1 --large-mib 32    a quick one
#   bench/archive.sh --scenario small --target smb --trace-smbclient      where the job's time goes
#   bench/archive.sh --help                            the options (--batch-files, --dir, --keep, …)
set -euo pipefail
cd "$(dirname "$0")/.."
for pair in /usr/sbin/smbd:samba smbclient:smbclient rsync:rsync; do
  command -v "${pair%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${pair#*:}"; }
done
cargo build --release -q -p custos-archive-bench
exec "${CARGO_TARGET_DIR:-target}"/release/custos-archive-bench "$@"
