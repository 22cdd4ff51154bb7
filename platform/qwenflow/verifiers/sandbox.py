"""Run untrusted Python (generated code plus its unit tests) inside bubblewrap namespaces.

Isolation is the kernel's, set up by bubblewrap (`bwrap`, Debian package `bubblewrap`), not a Python hook:
- private PID, mount, network, IPC and UTS namespaces: no network at all (not even loopback), and when the program
  ends or its deadline passes the namespace's init dies and the kernel kills every descendant, `setsid` and
  `fork_exec` children included;
- a read-only view of only the interpreter's install and the shared libraries; no /proc, /etc, /home or /root;
  a private, size-capped tmpfs for /tmp and /dev/shm (the working directory), gone when the run ends;
- a fresh random uid per run (when started as root), so RLIMIT_NPROC counts only this run's processes; plus
  CPU, address-space, file-size and open-file limits; a wall-clock deadline; output capped while it streams.

Grading cannot be forged by exiting: the harness runs the program, then each test, and reports every test's outcome
as a record keyed (BLAKE2 MAC) with a per-run key that only the audit hook holds; the hook signs a record only
when asked from the harness's own top-level frame on the main thread. `sys.exit(0)`, `os._exit(0)`, signals,
printed text or bytes written to the result pipe therefore score 0; a missing, unsigned or duplicated record is an
error. The hook also refuses ctypes, gc object walks and tracing (the ways to reach the key or rewrite the
harness's frame). What it cannot stop (the tests run in the same interpreter as the code under test): an object
whose `__eq__` always answers True, or code that reads the tests' expected values from its caller's frame.

If bubblewrap is missing or cannot create namespaces here, every call raises SandboxUnavailable: generated code
never runs unsandboxed.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]
KEY_BYTES = 32

# Runs inside the sandbox as its first (trusted) code: read the job, lock down, then run program and tests.
_HARNESS = r"""
import marshal, os, resource, sys, _blake2, _thread
_MODULE_CODE = sys._getframe().f_code
def _read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
_raw = _read_all(0)
_null = os.open("/dev/null", os.O_RDONLY); os.dup2(_null, 0); os.close(_null)
_job = marshal.loads(_raw[32:])  # built in: no json/re import on every start (the host wrote it)
if _job["result_fd"] != 3:  # the host's pipe, moved to the fd the hook writes
    os.dup2(_job["result_fd"], 3); os.close(_job["result_fd"])
def _lock_down(job):
    uid = job["uid"]
    if os.getuid() == 0 and uid:
        for d in ("/tmp", "/dev/shm"):
            os.chown(d, uid, uid)
    lim = job["limits"]
    for res, val in ((resource.RLIMIT_CPU, lim["cpu_s"]), (resource.RLIMIT_AS, lim["memory_bytes"]),
                     (resource.RLIMIT_NPROC, lim["max_procs"] + 1), (resource.RLIMIT_FSIZE, lim["file_bytes"]),
                     (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (val, val + 1 if res == resource.RLIMIT_CPU else val))  # SIGXCPU before SIGKILL
    if os.getuid() == 0 and uid:
        os.setgroups([]); os.setgid(uid); os.setuid(uid)  # drops every capability too
_lock_down(_job)
def _install_hook(key, main_code, module_code):
    write, mac, getframe = os.write, _blake2.blake2b, sys._getframe
    ident, main_tid = _thread.get_ident, _thread.get_ident()
    refused = frozenset(("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.settrace", "sys.setprofile",
                         "sys._current_frames", "sys._current_exceptions"))
    started = []  # the harness's own _main frame, bound before any program code runs
    def hook(event, args):
        if event == "qwenflow.report":
            f = getframe(1)
            if not started:  # the first report opens the run: from _main at the bottom of the main thread
                b = f.f_back
                if not (args == (-2, "start") and f.f_code is main_code and b is not None and
                        b.f_code is module_code and b.f_back is None and ident() == main_tid):
                    raise PermissionError("sandbox: results are reported by the harness only")
                started.append(f)
                return
            if f is not started[0] or ident() != main_tid:  # a re-run of the harness code is another frame
                raise PermissionError("sandbox: results are reported by the harness only")
            msg = ("%d %s" % args).encode()
            write(3, msg + b" " + mac(msg, key=key, digest_size=16).hexdigest().encode() + b"\n")
        elif (event in refused or event.startswith("ctypes.")
              or (event == "import" and args[0] in ("ctypes", "_ctypes"))):
            raise PermissionError(f"sandbox: {event} is not allowed")
    sys.addaudithook(hook)
def _main(job, audit=sys.audit, ex=exec, comp=compile, flush=lambda: (sys.stdout.flush(), sys.stderr.flush()),
          exit_now=os._exit):
    # The code under test can read this frame (same interpreter), so it holds nothing it could change: no closures
    # (their cells are writable), no lists; every step and the loop's state are immutable locals.
    audit("qwenflow.report", -2, "start")
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    code, tests = job["code"], tuple(job["tests"])
    steps = ((-1, code, "program.py"),) if code and tests else ()
    steps += tuple((i, t, "test_%d.py" % i) for i, t in enumerate(tests)) if tests else ((0, code, "program.py"),)
    setup_ok = True  # a plain script (no tests) is its own single test, step 0
    for i, src, name in steps:
        outcome = "error"
        if setup_ok:
            try:
                ex(comp(src, name, "exec"), g)
                outcome = "passed"
            except BaseException as e:
                outcome = "failed" if isinstance(e, AssertionError) else "error"
                try:
                    import traceback  # only on failure: most programs pass, and the import costs a few ms per run
                    traceback.print_exception(e)
                except BaseException:
                    print("sandbox: the program's exception could not be printed", file=sys.stderr)
                del e
        if i < 0:
            setup_ok = outcome == "passed"
            continue
        try:
            flush()
        except BaseException:
            pass
        audit("qwenflow.report", i, outcome)
    audit("qwenflow.report", -1, "done")
    exit_now(0)  # at once: no waiting for threads or atexit handlers the program left behind
_install_hook(_raw[:32], _main.__code__, _MODULE_CODE)
del _raw
_main(_job)
"""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here: generated code is not run at all."""


@dataclass
class SandboxResult:
    status: Status
    returncode: int | None
    output: str  # stdout + stderr, the last `max_output` characters
    seconds: float
    tests: list[str] = field(default_factory=list)  # per-test outcome from the signed records, in order
    note: str = ""  # why a run was scored as it was, when not by its tests (limits, tampering)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10  # CPU seconds (RLIMIT_CPU)
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS)
    max_procs: int = 4  # extra processes/threads the program may start (RLIMIT_NPROC)
    file_bytes: int = 10 << 20  # largest file it may write (RLIMIT_FSIZE)
    tmp_bytes: int = 64 << 20  # size of its private /tmp (and, separately, /dev/shm)
    max_output: int = 8000  # characters of output kept (the end: tracebacks come last)
    output_limit: int = 1 << 20  # bytes of output after which the run is stopped as an error


def _ro_view() -> list[str]:
    """bwrap arguments for a read-only view of the interpreter's install and the system libraries only."""
    prefix = os.path.realpath(sys.base_prefix)
    binds = [
        d
        for d in ("/usr/lib", "/usr/lib64", "/usr/lib32")
        if os.path.isdir(d) and not os.path.islink(d) and not prefix.startswith(d + "/")
    ]
    links: list[str] = []
    for d in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(d):
            links += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            binds.append(d)
    if prefix not in binds:
        binds.append(prefix)
    parents = sorted({p for b in binds for p in _ancestors(b)})
    # bwrap would create missing parents 0700 (e.g. /usr, or /root for pyenv): the run's uid must pass through
    dirs = [a for p in parents for a in ("--perms", "0755", "--dir", p)]
    return dirs + [a for b in binds for a in ("--ro-bind", b, b)] + links


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _interpreter() -> str:
    """The base interpreter (a venv's python is a symlink into base_prefix; its site-packages stay outside)."""
    exe = os.path.realpath(sys.executable)
    if not exe.startswith(os.path.realpath(sys.base_prefix) + "/"):
        raise SandboxUnavailable(
            f"the interpreter {exe} is outside its install {sys.base_prefix}; the sandbox binds only that install"
        )
    return exe


def _command(limits: Limits) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed (no `bwrap` on PATH): `apt-get install bubblewrap`; "
            "generated code is never run without it"
        )
    ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.getuid() != 0:
        ns.append("--unshare-user")  # unprivileged: bwrap needs a user namespace to mount
    tmp = str(max(1 << 20, int(limits.tmp_bytes)))
    return [
        bwrap,
        *ns,
        "--die-with-parent",
        "--new-session",
        *_ro_view(),
        "--dev",
        "/dev",
        "--size",
        tmp,
        "--tmpfs",
        "/tmp",
        "--size",
        tmp,
        "--tmpfs",
        "/dev/shm",
        "--chdir",
        "/tmp",
        "--clearenv",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        _interpreter(),
        "-I",
        "-S",
        "-B",
        "-c",
        _HARNESS,
    ]


def _verify(lines: bytes, key: bytes, n_tests: int) -> tuple[list[str] | None, str]:
    """Per-test outcomes from signed records; (None, why) when a record is unsigned, duplicated or missing."""
    got: dict[int, str] = {}
    done = False
    for line in lines.splitlines():
        try:
            i, outcome, mac = line.decode("ascii").split(" ")
            msg = f"{int(i)} {outcome}".encode()
        except (UnicodeDecodeError, ValueError):
            return None, "a malformed record on the result channel"
        want = hashlib.blake2b(msg, key=key, digest_size=16).hexdigest()
        if not secrets.compare_digest(want, mac):
            return None, "an unsigned record on the result channel"
        if int(i) == -1:
            done = done or outcome == "done"
            continue
        if int(i) in got or not 0 <= int(i) < n_tests:
            return None, "a duplicated or unknown test record (more than one process reported)"
        got[int(i)] = outcome
    if not done or len(got) != n_tests:
        return None, "the program ended before its tests reported"
    return [got[i] for i in range(n_tests)], ""


def run_python(code: str, limits: Limits = Limits(), tests: Sequence[str] = ()) -> SandboxResult:
    """Run `code`, then each of `tests` in its globals; passed only when every test reports passed.

    Without tests the program itself is the one test: it passes when it runs to its end without raising
    (SystemExit included). failed = an assertion failed; error = anything else raised, the program exited or was
    killed before its tests reported, or it went over the output limit; timeout = wall clock or CPU limit hit."""
    _check_available()
    return _run(code, list(tests), limits)


def _run(code: str, tests: list[str], limits: Limits) -> SandboxResult:
    start = time.monotonic()
    cmd = _command(limits)
    key = secrets.token_bytes(KEY_BYTES)
    res_r, res_w = os.pipe()  # the harness's signed per-test records
    info_r, info_w = os.pipe()  # bwrap's --info-fd: the host pid of the namespace's init
    job = {
        "code": code,
        "tests": tests,
        "result_fd": res_w,
        "uid": secrets.randbelow(1 << 30) + (1 << 20) if os.getuid() == 0 else 0,
        "limits": {
            "cpu_s": max(1, int(limits.cpu_s)),
            "memory_bytes": int(limits.memory_bytes),
            "max_procs": int(limits.max_procs),
            "file_bytes": int(limits.file_bytes),
        },
    }
    try:
        proc = subprocess.Popen(
            [cmd[0], "--info-fd", str(info_w), *cmd[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(res_w, info_w),
            start_new_session=True,
        )
    except BaseException:
        for fd in (res_r, info_r):
            os.close(fd)
        raise
    finally:
        os.close(res_w)
        os.close(info_w)
    assert proc.stdin is not None and proc.stdout is not None  # both opened as PIPE
    out_fd = proc.stdout.fileno()
    streams = {out_fd: bytearray(), res_r: bytearray(), info_r: bytearray()}
    total, why, timed_out = 0, "", False
    deadline = start + limits.timeout_s
    try:
        try:
            proc.stdin.write(key + marshal.dumps(job))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as sel:
            for fd in streams:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for k, _ in sel.select(left):
                    chunk = os.read(k.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(k.fd)
                        continue
                    buf = streams[k.fd]
                    buf += chunk
                    if k.fd == out_fd:
                        total += len(chunk)
                        del buf[: max(0, len(buf) - 4 * limits.max_output)]  # capped while it streams
                    else:
                        del buf[1 << 16 :]  # a few records per test; more is tampering, kept small
                if total > limits.output_limit:
                    why = f"output over {limits.output_limit} bytes: stopped"
                    break
    finally:
        _stop(proc, streams[info_r])
        proc.stdout.close()
        os.close(res_r)
        os.close(info_r)
    rc = proc.returncode
    text = streams[out_fd].decode("utf-8", "replace")[-limits.max_output :]
    outcomes, bad = _verify(bytes(streams[res_r]), key, len(tests) or 1)
    if _setup_failed(rc, text, streams[res_r]):
        raise SandboxUnavailable(f"bubblewrap could not start the sandbox: {text.strip().splitlines()[-1:]}")
    status: Status
    if why:
        status = "error"
    elif outcomes is not None and all(o == "passed" for o in outcomes):
        status = "passed"
    elif outcomes is not None:
        status = "failed" if "error" not in outcomes else "error"
    elif timed_out or rc in (128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGXCPU, -signal.SIGKILL):
        status, why = (
            "timeout",
            ("wall clock" if timed_out else "CPU limit") + f" after {time.monotonic() - start:.1f} s",
        )
    else:
        status, why = "error", bad
    return SandboxResult(status, rc, text, round(time.monotonic() - start, 3), outcomes or [], why)


def _stop(proc: subprocess.Popen, info: bytearray) -> None:
    """Kill the namespace's init (the kernel then kills every process in the namespace, and init's exit waits
    for them), then bwrap; on return no process of the run is left."""
    try:
        child = int(json.loads(bytes(info))["child-pid"])
    except (ValueError, KeyError, TypeError):
        child = None
    if child is not None and proc.poll() is None:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)  # bwrap waits for its init, whose exit waits for the namespace to empty
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc.pid)
    proc.wait()


def _setup_failed(rc: int | None, text: str, records: bytearray) -> bool:
    """bwrap itself failed (no namespaces here): it says so on stderr, exits 1 and the harness never ran."""
    return rc == 1 and not records and text.lstrip().startswith("bwrap:")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@lru_cache(maxsize=1)
def _probe() -> str:
    r = _run("print('sandbox ok')", [], Limits(timeout_s=30, cpu_s=10))
    if not r.passed:
        raise SandboxUnavailable(
            f"the sandbox does not run a trivial program here ({r.status}: {r.note or r.output[-300:]})"
        )
    return r.output


def _check_available() -> None:
    """Once per process: bubblewrap is there and works (raises SandboxUnavailable with its own message if not)."""
    _command(Limits())
    _probe()


def run_many(
    codes: list[str],
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: bool = False,
    tests: Sequence[Sequence[str]] | None = None,
) -> list[SandboxResult]:
    """Run several programs (each with its tests) in parallel sandboxes (threads only wait on them), in order."""
    _check_available()
    tests = tests if tests is not None else [()] * len(codes)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(lambda ct: _run(ct[0], list(ct[1]), limits), zip(codes, tests))
        if progress:
            # lazy: 24 ms to import, needed only here
            from tqdm import tqdm

            it = tqdm(it, total=len(codes), desc="sandbox", leave=False)
        return list(it)
