"""The sandbox turns hostile or broken programs into counted failures, quickly, and never hangs."""
import time

from qwenflow.verifiers.sandbox import Limits, run_many, run_python

FAST = Limits(timeout_s=4, cpu_s=2)


def test_passing_and_failing_programs():
    assert run_python("import math, collections, re\nassert math.gcd(4, 6) == 2\nprint('ok')").status == "passed"
    r = run_python("assert 1 == 2, 'wrong'")
    assert r.status == "failed" and "wrong" in r.output


def test_infinite_loop_times_out_quickly():
    t = time.monotonic()
    assert run_python("while True:\n    pass", FAST).status == "timeout"
    assert run_python("import time\ntime.sleep(60)", FAST).status == "timeout"
    assert time.monotonic() - t < 12


def test_huge_allocation_is_an_error_not_an_oom():
    r = run_python("x = bytearray(10 * 1024 ** 3)", FAST)
    assert r.status == "error" and "MemoryError" in r.output


def test_fork_bomb_is_stopped():
    r = run_python("import os\nwhile True:\n    os.fork()", FAST)
    assert r.status == "error" and "os.fork" in r.output


def test_process_limit_is_enforced_by_the_kernel():
    # Threads count against RLIMIT_NPROC too; the audit hook does not see them, so this checks the rlimit itself.
    code = ("import threading, time\nts = []\nfor i in range(50):\n"
            "    t = threading.Thread(target=time.sleep, args=(2,), daemon=True); t.start(); ts.append(t)")
    r = run_python(code, Limits(timeout_s=4, cpu_s=2, max_procs=4))
    assert r.status == "error" and "can't start new thread" in r.output


def test_network_is_blocked():
    code = "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=2)"
    r = run_python(code, FAST)
    assert r.status == "error" and "not allowed" in r.output
    r = run_python("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:1', timeout=2)", FAST)
    assert r.status == "error"


def test_runs_in_a_fresh_private_directory():
    r = run_python("import os\nprint(os.getcwd(), sorted(os.listdir('.')))", FAST)
    assert r.status == "passed" and "qwenflow-sandbox-" in r.output and "['program.py']" in r.output


def test_run_many_keeps_order():
    res = run_many(["assert True", "assert False", "while True: pass"], FAST, workers=3)
    assert [r.status for r in res] == ["passed", "failed", "timeout"]
