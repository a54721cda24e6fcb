#!/usr/bin/env python3
"""Session-level SSH gateway benchmarks, driven by bench/ssh.sh (not a CI test).

  keystroke  DIRECT_PORT VIA_PORT   added keystroke round-trip p50 / p99 (1-byte echo via `cat`)
  idle       VIA_PORT PID COUNT [ROUNDS]  gateway memory per idle interactive session, given back?
  downloads  VIA_PORT COUNT MIB TRAILS_DIR  consecutive downloads; none may hang or come up short

The ssh command line comes from the SSH_CMD environment variable (separated by \\x1f), as built by
bench/ssh.sh (askpass, cipher, user).
"""
import os
import statistics
import subprocess
import sys
import time

SSH = os.environ["SSH_CMD"].split("\x1f")


def ssh(port, *args, **kwargs):
    return subprocess.Popen([*SSH, "-p", str(port), "127.0.0.1", *args], **kwargs)


def keystroke_round_trips(port, count=2000):
    """Round trips of one byte through `cat` on the target, in milliseconds."""
    proc = ssh(port, "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out, inp = proc.stdout.fileno(), proc.stdin.fileno()
    # The first round trip includes the session start: not a keystroke.
    os.write(inp, b"x")
    os.read(out, 1)
    times = []
    for i in range(count):
        start = time.perf_counter()
        os.write(inp, bytes([97 + i % 26]))
        if os.read(out, 1) != bytes([97 + i % 26]):
            sys.exit("keystroke echo mismatch")
        times.append((time.perf_counter() - start) * 1000)
    proc.stdin.close()
    proc.wait(timeout=10)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def keystroke(direct_port, via_port):
    direct = keystroke_round_trips(direct_port)
    via = keystroke_round_trips(via_port)
    print(
        f"keystroke round trip p50 / p99: direct {direct[0]:.3f} / {direct[1]:.3f} ms, "
        f"via Custos {via[0]:.3f} / {via[1]:.3f} ms, "
        f"added {via[0] - direct[0]:.3f} / {via[1] - direct[1]:.3f} ms"
    )


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def idle(via_port, pid, count, rounds=2):
    """Opens `count` interactive sessions (PTY + login shell), measures the gateway's RSS,
    closes them; twice, so that memory kept for reuse can be told from memory leaked."""
    first = rss_kib(pid)
    for round in range(1, rounds + 1):
        idle_round(via_port, pid, count, first, round)


def idle_round(via_port, pid, count, first, round):
    before = rss_kib(pid)
    sessions = []
    ready = 0
    for i in range(count):
        proc = ssh(via_port, "-tt", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL, bufsize=0)
        # The shell prints its prompt after `echo`: proof that the session is fully up.
        proc.stdin.write(b"echo ready-$((40+2))\n")
        sessions.append(proc)
        # Open them in waves, so sshd's MaxStartups never refuses one.
        if len(sessions) - ready >= 8 or i == count - 1:
            for p in sessions[ready:]:
                seen = b""
                while b"ready-42" not in seen:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        raise SystemExit("a session closed before it was up")
                    seen += chunk
            ready = len(sessions)
    time.sleep(2)
    during = rss_kib(pid)
    for p in sessions:
        p.stdin.write(b"exit\n")
        p.stdin.close()
    for p in sessions:
        p.wait(timeout=30)
    # custos serve gives freed memory back at most every 5 s.
    time.sleep(8)
    after = rss_kib(pid)
    per = (during - before) / count / 1024
    print(
        f"round {round}: gateway RSS {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with "
        f"{count} idle interactive sessions ({per:.3f} MiB per session; target <= 0.25), "
        f"{after / 1024:.1f} MiB after they closed (first round started at {first / 1024:.1f})"
    )


def downloads(via_port, count, mib, trails):
    """`count` downloads one after the other; each trail is deleted once its session ended, so
    that 100 GiB of recordings do not have to fit on the disk."""
    want = mib << 20
    hung = short = 0
    start = time.time()
    for _ in range(count):
        proc = ssh(via_port, f"head -c {want} /dev/zero", stdout=subprocess.PIPE)
        got = 0
        while chunk := proc.stdout.read(1 << 20):
            got += len(chunk)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hung += 1
            proc.kill()
            proc.wait()
        if got != want or proc.returncode != 0:
            short += 1
        for name in os.listdir(trails):
            os.remove(os.path.join(trails, name))
    elapsed = time.time() - start
    print(
        f"{count} consecutive {mib} MiB downloads in {elapsed:.0f} s: "
        f"{hung} clients left hanging after the last byte, {short} short or failed"
    )
    if hung or short:
        sys.exit(1)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "keystroke":
        keystroke(int(rest[0]), int(rest[1]))
    elif mode == "idle":
        idle(int(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]) if len(rest) > 3 else 2)
    elif mode == "downloads":
        downloads(int(rest[0]), int(rest[1]), int(rest[2]), rest[3])
    else:
        sys.exit(__doc__)
