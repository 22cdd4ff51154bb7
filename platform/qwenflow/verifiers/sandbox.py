"""Run untrusted Python (generated code plus its tests) in a locked-down subprocess.

What protects the host, strongest first:
- a fresh network namespace (Linux unshare(CLONE_NEWNET); unprivileged users get it inside a new user namespace),
  so no socket can reach anything, not even loopback; when the kernel refuses, an audit hook still blocks sockets;
- when started as root, the child drops to uid/gid 65534 (nobody): root ignores RLIMIT_NPROC and owns every file;
- resource limits: CPU seconds, address space (memory), process count (no fork bombs), file size, open files;
- a wall-clock timeout that kills the child's whole process group;
- a Python audit hook that refuses fork/exec/subprocess/socket/ctypes in the program (defence in depth: a
  determined program can get around audit hooks, which is why the kernel limits above come first);
- a private temporary working directory, an empty environment and `python -I -S` (no user site, no venv packages).
Nothing here is a container; it is meant for model-written code, not for adversaries with kernel exploits.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]

# Runs inside the child, before the untrusted program: isolate, drop privileges, limit, then exec the program.
_RUNNER = r'''
import ctypes, json, os, resource, sys, traceback
cfg = json.loads(sys.argv[1])
src = open("program.py", encoding="utf-8").read()
net = "none"
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
if os.geteuid() == 0:
    if libc.unshare(CLONE_NEWNET) == 0:
        net = "namespace"
    # The interpreter may live where nobody cannot look (pyenv under /root): keep the library directories open
    # and import through /proc/self/fd, which checks only the opened directory's own permissions.
    moved = {d: "/proc/self/fd/%d" % os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in sys.path if os.path.isdir(d)}
    sys.path[:] = list(moved.values())
    for mod in list(sys.modules.values()):  # packages already imported (encodings, json, ...) look up submodules too
        paths = getattr(mod, "__path__", None)
        if isinstance(paths, list):
            mod.__path__ = [next((p.replace(d, fd, 1) for d, fd in moved.items() if p.startswith(d + "/")), p)
                            for p in paths]
    sys.path_importer_cache.clear()
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
    net = "namespace"
uid = os.getuid()
def _count(uid):
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += os.stat("/proc/" + p).st_uid == uid
            except OSError:
                pass
    return n
nproc = _count(uid) + cfg["max_procs"]
for lim, val in ((resource.RLIMIT_CPU, cfg["cpu_s"]), (resource.RLIMIT_AS, cfg["memory_bytes"]),
                 (resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_FSIZE, cfg["file_bytes"]),
                 (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(lim, (val, val + 1 if lim == resource.RLIMIT_CPU else val))  # SIGXCPU before SIGKILL
BLOCKED = ("socket.", "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
           "subprocess.Popen", "ctypes.", "os.kill", "os.killpg", "pty.")
def _hook(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
del libc, ctypes
sys.addaudithook(_hook)
try:
    exec(compile(src, "program.py", "exec"), {"__name__": "__main__"})
except AssertionError:
    traceback.print_exc(); sys.exit(1)
except SystemExit:
    raise
except BaseException:
    traceback.print_exc(); sys.exit(3)
'''


@dataclass
class SandboxResult:
    status: Status
    returncode: int | None
    output: str          # stdout + stderr, truncated
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0           # wall clock
    cpu_s: int = 10                   # CPU seconds (RLIMIT_CPU)
    memory_bytes: int = 1 << 30       # address space (RLIMIT_AS)
    max_procs: int = 4                # extra processes/threads the program may start (RLIMIT_NPROC)
    file_bytes: int = 10 << 20        # largest file it may write (RLIMIT_FSIZE)
    max_output: int = 8000            # characters of output kept


def run_python(code: str, limits: Limits = Limits()) -> SandboxResult:
    """Run `code` as a script; passed = exit 0, failed = an assertion failed or it exited non-zero,
    timeout = wall clock or CPU limit hit, error = it raised something else (MemoryError, a blocked call, a bug)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qwenflow-sandbox-") as tmp:
        os.chmod(tmp, 0o777)  # the child may run as nobody
        Path(tmp, "program.py").write_text(code, encoding="utf-8")
        cfg = json.dumps({"cpu_s": max(1, int(limits.cpu_s)), "memory_bytes": int(limits.memory_bytes),
                          "max_procs": int(limits.max_procs), "file_bytes": int(limits.file_bytes)})
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _RUNNER, cfg], cwd=tmp,
                                env={"PATH": "/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8", "TMPDIR": tmp},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            out, _ = proc.communicate()
        _kill_group(proc.pid)  # leftovers a program may have started
    text = out.decode("utf-8", "replace")[-limits.max_output:]
    rc = proc.returncode
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        status: Status = "timeout"
    elif rc == 0:
        status = "passed"
    elif rc == 3 or rc < 0:
        status = "error"
    else:
        status = "failed"
    return SandboxResult(status, rc, text, round(time.monotonic() - start, 3))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_many(codes: list[str], limits: Limits = Limits(), workers: int | None = None,
             progress: bool = False) -> list[SandboxResult]:
    """Run several programs in parallel sandboxes (threads only wait on child processes), results in order."""
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(lambda c: run_python(c, limits), codes)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(codes), desc="sandbox", leave=False)
        return list(it)
