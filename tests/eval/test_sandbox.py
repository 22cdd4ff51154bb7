"""The sandbox turns hostile or broken programs into counted failures: it cannot be gamed by exiting, leaves no
process, file or memory behind, sees no host file and no network, and ends on time."""

import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from qwenflow.data.benchmarks import load_humaneval
from qwenflow.eval.tasks import humaneval
from qwenflow.verifiers import sandbox
from qwenflow.verifiers.code import CodeReward
from qwenflow.verifiers.guard import GuardedReward
from qwenflow.verifiers.sandbox import Limits, SandboxUnavailable, run_many, run_python

FAST = Limits(timeout_s=4, cpu_s=2)


def test_passing_and_failing_programs():
    assert run_python("import math, collections, re\nassert math.gcd(4, 6) == 2\nprint('ok')").status == "passed"
    r = run_python("assert 1 == 2, 'wrong'")
    assert r.status == "failed" and "wrong" in r.output
    r = run_python("def f(x):\n    return x + 1", tests=["assert f(1) == 2", "assert f(2) == 4", "f(None)"])
    assert r.status == "error" and r.tests == ["passed", "failed", "error"]


@pytest.mark.parametrize(
    "exit_code",
    [
        "import sys\nsys.exit(0)",
        "raise SystemExit(0)",
        "import os\nos._exit(0)",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "import os\nos.write(3, b'0 passed ' + b'0' * 32 + b'\\n-1 done ' + b'0' * 32 + b'\\n')\nos._exit(0)",
        "import sys\nsys.audit('qwenflow.report', 0, 'passed')\nsys.audit('qwenflow.report', -1, 'done')",
        "import sys\nsys.settrace(lambda *a: None)",
    ],
)
def test_exiting_or_forging_before_the_tests_scores_zero(exit_code):
    """Every way to end early or speak for the harness: the tests never report passed, so nothing passes."""
    r = run_python(f"def add(a, b):\n    return None\n{exit_code}\n", FAST, tests=["assert add(2, 3) == 5"])
    assert r.status in ("error", "timeout") and r.tests in ([], ["error"]), r
    reward = CodeReward(FAST)
    assert reward([f"```python\ndef add(a, b):\n    return None\n{exit_code}\n```"], ["assert add(2, 3) == 5"]) == [0.0]


RERUN_AT_EXIT = r"""
import atexit, marshal, os, signal, sys
m = sys.modules["__main__"]
r, w = os.pipe()
os.write(w, b"k" * 32 + marshal.dumps({"code": "", "tests": ["pass"], "result_fd": 3, "uid": 0,
          "limits": {"cpu_s": 5, "memory_bytes": 1 << 30, "max_procs": 4, "file_bytes": 1 << 20}}))
os.close(w); os.dup2(r, 0)
atexit.register(exec, m._MODULE_CODE, {"__name__": "__main__", "__builtins__": __builtins__})
atexit.register(signal.setitimer, signal.ITIMER_REAL, 0)
def interrupt(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.0005)
"""


@pytest.mark.parametrize(
    "attack",
    [
        "import sys\nsys.modules['__main__']._main({'code': '', 'tests': ['pass']})",  # the harness, called again
        RERUN_AT_EXIT,  # interrupt the harness, then re-run its code from the bottom of the stack with our own tests
    ],
)
def test_rerunning_the_harness_cannot_report_a_pass(attack):
    r = run_python(f"def add(a, b):\n    return None\n{attack}", FAST, tests=["assert add(2, 3) == 5"])
    assert r.status != "passed" and "passed" not in r.tests, r


def test_code_under_test_cannot_switch_off_the_later_tests():
    """The harness frame is reachable from the code under test (same interpreter): nothing there may be mutable."""
    code = """
import sys
def add(a, b):
    f = sys._getframe(1)
    while f is not None and f.f_code.co_name != "_main":
        f = f.f_back
    for v in (f.f_locals.values() if f is not None else ()):
        for cell in getattr(v, "__closure__", None) or ():
            if cell.cell_contents is exec:
                cell.cell_contents = lambda *a: None      # the harness's exec, for the tests still to come
        if isinstance(v, list):
            v[:] = ["pass"] * len(v)                       # or the tests themselves
    return 5
"""
    r = run_python(code, FAST, tests=["assert add(2, 3) == 5", "assert add(1, 1) == 2", "assert add(0, 0) == 0"])
    assert r.status == "failed" and r.tests == ["passed", "failed", "failed"], r


def test_humaneval_completion_that_exits_scores_zero():
    bench = load_humaneval()
    statuses = humaneval.execute(
        bench.items[:2], [["    import sys\n    sys.exit(0)\n"], ["    return None\n"]], workers=2
    )
    assert statuses == [["error"], ["failed"]]


def _host_pids_with(marker: str) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{p}/cmdline").read_bytes():
                    found.append(int(p))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("ends", ["deadline", "exit"])
def test_fork_exec_and_new_session_children_are_dead_afterwards(ends):
    marker = "qwenflow-orphan-" + secrets.token_hex(6)
    code = f"""
import os, subprocess, sys, time, _posixsubprocess
argv = [sys.executable, "-c", "import time; time.sleep(60)", "{marker}"]
subprocess.Popen(argv, start_new_session=True)
if os.fork() == 0:
    os.setsid()
    os.execv(sys.executable, argv)
r, w = os.pipe()
_posixsubprocess.fork_exec(argv, [sys.executable.encode()], True, (w,), None, None, -1, -1, -1, -1, -1, -1,
                           r, w, True, True, -1, None, None, None, -1, None, False)  # CPython 3.11's signature
time.sleep(1.0)
print("started", flush=True)
{"time.sleep(60)" if ends == "deadline" else ""}
"""
    t = time.monotonic()
    r = run_python(code, Limits(timeout_s=3, cpu_s=5, max_procs=8))
    assert "started" in r.output, r.output
    assert r.status == ("timeout" if ends == "deadline" else "passed"), r
    assert time.monotonic() - t < 3 + 1
    assert _host_pids_with(marker) == []


def test_nothing_written_persists_and_tmp_is_private():
    name = "qwenflow-persist-" + secrets.token_hex(6)
    write = (
        f"for d in ('/tmp', '/dev/shm', '.'):\n    open(d + '/{name}', 'w').write('x')\nimport os\nprint(os.getcwd())"
    )
    r = run_python(write, FAST)
    assert r.status == "passed" and r.output.strip() == "/tmp", r
    r = run_python("import os\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')))", FAST)
    assert r.status == "passed" and r.output.strip() == "[] []", r
    assert not Path("/tmp", name).exists() and not Path("/dev/shm", name).exists()
    r = run_python("open('/tmp/big', 'wb').write(b'x' * (200 << 20))", FAST)  # over the tmpfs size
    assert r.status == "error" and ("No space left" in r.output or "File too large" in r.output), r


def test_host_files_are_not_visible(tmp_path):
    planted = Path.home() / f"qwenflow-planted-{secrets.token_hex(6)}"
    planted.write_text("host secret")
    try:
        r = run_python(f"print(open({str(planted)!r}).read())", FAST)
        assert r.status == "error" and "host secret" not in r.output and "No such file" in r.output
        r = run_python(f"print(open({sandbox.__file__!r}).read()[:50])", FAST)  # the project's own tree
        assert r.status == "error" and "No such file" in r.output
        r = run_python("import os\nprint(sorted(os.listdir('/')))", FAST)
        assert r.status == "passed" and "etc" not in r.output and "home" not in r.output and "proc" not in r.output
        r = run_python("open('/usr/lib/qwenflow-x', 'w')", FAST)  # the view is read-only
        assert r.status == "error" and ("Read-only" in r.output or "Permission denied" in r.output), r.output
    finally:
        planted.unlink()


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize("output_limit", [Limits.output_limit, 1 << 40])
def test_print_flood_keeps_host_memory_and_time_bounded(output_limit):
    """Stopped at the output limit, or (no limit) drained with only the tail kept until the deadline."""
    peak, stop = [_rss_mb()], threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(_rss_mb())
            time.sleep(0.01)

    watcher = threading.Thread(target=sample)
    watcher.start()
    base = peak[0]
    t = time.monotonic()
    r = run_python(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        Limits(timeout_s=3, cpu_s=10, output_limit=output_limit),
    )
    took = time.monotonic() - t
    stop.set()
    watcher.join()
    assert took < 3 + 1 and max(peak) - base < 64, (took, max(peak) - base)
    assert len(r.output) <= Limits.max_output
    assert (r.status, "output over" in r.note) == (
        ("error", True) if output_limit == Limits.output_limit else ("timeout", False)
    ), r.note


def test_infinite_loop_times_out_quickly():
    t = time.monotonic()
    assert run_python("while True:\n    pass", FAST).status == "timeout"
    assert run_python("import time\ntime.sleep(60)", FAST).status == "timeout"
    assert time.monotonic() - t < 12


def test_huge_allocation_is_an_error_not_an_oom():
    r = run_python("x = bytearray(10 * 1024 ** 3)", FAST)
    assert r.status == "error" and "MemoryError" in r.output


def test_fork_bomb_is_stopped_by_the_kernel():
    t = time.monotonic()
    r = run_python("import os\nwhile True:\n    os.fork()", FAST)
    assert r.status in ("error", "timeout") and time.monotonic() - t < 6
    assert r.status == "timeout" or "Resource temporarily unavailable" in r.output


def test_process_limit_is_enforced_by_the_kernel():
    code = (
        "import threading, time\nts = []\nfor i in range(50):\n"
        "    t = threading.Thread(target=time.sleep, args=(2,), daemon=True); t.start(); ts.append(t)"
    )
    r = run_python(code, Limits(timeout_s=4, cpu_s=2, max_procs=4))
    assert r.status == "error" and "can't start new thread" in r.output


def test_network_is_private():
    """A service on the host's loopback is not reachable (the sandbox's loopback is its own), nor any route out."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        port = server.getsockname()[1]
        r = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", FAST)
        assert r.status == "error" and "Connection refused" in r.output, r.output
        with pytest.raises(TimeoutError):
            server.accept()
    r = run_python("import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)", FAST)
    assert r.status == "error" and "Network is unreachable" in r.output, r.output
    r = run_python("import socket\nprint([n for _, n in socket.if_nameindex()])", FAST)
    assert r.status == "passed" and r.output.strip() == "['lo']", r.output


def test_run_many_keeps_order():
    res = run_many(["assert True", "assert False", "while True: pass"], FAST, workers=3)
    assert [r.status for r in res] == ["passed", "failed", "timeout"]


def test_no_sandbox_means_a_loud_error_and_no_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        run_python(f"open({str(tmp_path / 'ran')!r}, 'w')")
    assert not (tmp_path / "ran").exists()
    guarded = GuardedReward(CodeReward(FAST), "code", on_error="zero")
    with pytest.raises(SandboxUnavailable):  # a reward guard does not turn it into silent zeros
        guarded(["def f(): pass"], answer=["assert True"])


def test_a_failing_bwrap_is_reported_with_its_own_message(monkeypatch, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="Creating new namespace failed"):
            run_python("print(1)")
    finally:
        monkeypatch.undo()
        sandbox._probe.cache_clear()
    assert run_python("print(1)").passed  # the real bwrap again
