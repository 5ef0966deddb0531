"""Verifier and sandbox limits under load: 1,000 math rows (pathological ones among them) and 500 code rows
(adversarial ones among them) through the filter stage on 2 ranks, in its own process session.

Checked: the stage finishes within the sum of the budgets of its bad rows (the stage does not expose per-row
timings: with budget + 1 s for every pathological row, run one after another, plus the time of the plain
rows, a row that outlived its budget would show); every row is accounted for, the plain rows pass and the
bad ones are judged with a reason; no process of the run survives it (psutil: nothing left in its session,
no daemon carrying the test's marker); and this process stays responsive (a heartbeat thread's longest gap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from reliability_helpers import ROOT

from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
from thinktoggle.schemas.convert import record_to_row
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import compose_output

MATH_TIMEOUT_S, CODE_WALL_S = 3.0, 3.0
N_MATH, N_CODE = 1000, 500
MARK = f"reliability-{uuid.uuid4().hex[:12]}"  # daemons carry it in argv: found by psutil if they leak

FRAC_300 = "1"
for _ in range(300):
    FRAC_300 = "\\frac{1}{1+" + FRAC_300 + "}"
PATHOLOGICAL_MATH = [
    (f"\\boxed{{{FRAC_300}}}", "1/2"),  # 300-deep \frac nesting
    ("\\boxed{" + "7" * 5000 + "}", "7" * 4999 + "8"),  # 5,000-digit integers
    ("\\boxed{9^{9^9}}", "9^{387420489}"),  # a power tower
    ("\\boxed{" + "(" * 2000 + "1" + ")" * 2000 + "}", "1"),  # deep parentheses
    ("\\boxed{" + "x^" * 500 + "2}", "4"),
]
ADVERSARIAL_CODE = {
    "infinite_loop": "def add(a, b):\n    while True:\n        pass",
    "fork_bomb": "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
    "            pass",
    "memory_bomb": "def add(a, b):\n    chunks = []\n    while True:\n        chunks.append(bytearray(64 << 20))",
    "huge_output": "def add(a, b):\n    while True:\n        print('x' * 65536)",
    "setsid_daemon": "import os, sys\ndef add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        if os.fork() == 0:\n"
    f"            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', '{MARK}'])\n"
    "        os._exit(0)\n    return a + b",
    "sleeper": "import time\ndef add(a, b):\n    time.sleep(60)\n    return a + b",
}
ADD_CHECK = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def math_rows() -> list[dict]:
    rows = []
    n_bad = 0
    for k in range(N_MATH):
        if k % 50 == 0:  # 20 pathological rows, each kind 4 times
            output, gold = PATHOLOGICAL_MATH[n_bad % len(PATHOLOGICAL_MATH)]
            n_bad += 1
        else:
            output, gold = f"So the result is \\boxed{{{k * 7 % 1000}}}.", str(k * 7 % 1000)
        record = Record(
            input=[{"role": "user", "content": f"Math problem {k}: compute it."}],
            category="math",
            reasoning="on",
            output=compose_output(f"Working on problem {k}.", output),
            expected_answer=gold,
            generator="load-test",
        )
        rows.append(record_to_row(record))
    return rows


def code_rows() -> list[dict]:
    rows = []
    kinds = list(ADVERSARIAL_CODE)
    for k in range(N_CODE):
        if k % 25 == 0:  # 20 adversarial rows
            code = ADVERSARIAL_CODE[kinds[(k // 25) % len(kinds)]]
        else:
            code = f"def add(a, b):\n    # variant {k}\n    return a + b"
        record = Record(
            input=[{"role": "user", "content": f"Code problem {k}: write add."}],
            category="code",
            reasoning="off",
            output=f"```python\n{code}\n```",
            tests=ADD_CHECK,
            generator="load-test",
        )
        rows.append(record_to_row(record))
    return rows


STAGE_SCRIPT = """
import sys
from pathlib import Path
from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.filters.stage import CodeConfig, FilterConfig, MathConfig, run_filter
if __name__ == "__main__":
    config = FilterConfig(
        only=("math", "code"),
        math=MathConfig(row_timeout_s=float(sys.argv[3]), majority=False),
        code=CodeConfig(wall_s=float(sys.argv[4]), cpu_s=1, memory_mb=512, workers=1, batch_size=8),
    )
    stats = run_filter(config, [Path(sys.argv[1])], Path(sys.argv[2]), ExecutorConfig(tasks=2, workers=2))
    print(stats.n_in, stats.kept, stats.n_dropped, stats.n_failed)
"""


class Heartbeat(threading.Thread):
    """Ticks every 50 ms; `max_gap` is the longest time between two ticks (host responsiveness)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.max_gap = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        last = time.monotonic()
        while not self.stop.wait(0.05):
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now


def marked_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if MARK in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_pathological_math_and_adversarial_code_on_two_ranks(tmp_path):
    rows_path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(math_rows() + code_rows(), schema=PUBLISHED_SCHEMA), rows_path)
    out = tmp_path / "filter"
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE_SCRIPT, str(rows_path), str(out), str(MATH_TIMEOUT_S), str(CODE_WALL_S)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its session: whatever it leaves behind is found by sid
    )
    # the bound: every bad row at its budget + 1 s, one after another, plus a minute for the 1,460 plain rows
    bound = 20 * (MATH_TIMEOUT_S + 1) + 20 * (CODE_WALL_S + 1) + 60
    try:
        stdout, stderr = proc.communicate(timeout=bound)
    finally:
        elapsed = time.monotonic() - started
        heartbeat.stop.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert elapsed < bound

    # nothing of the run survives it
    deadline = time.monotonic() + 5  # exited children are reaped by init a moment later: a zombie is no leak
    while (session := live_in_session(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session, f"processes left in the stage's session: {session}"
    assert not marked_processes(), "a setsid daemon outlived its sandbox"

    assert heartbeat.max_gap < 2.0, f"host unresponsive: heartbeat gap {heartbeat.max_gap:.2f}s"

    n_in, kept, dropped, failed = map(int, stdout.split()[-4:])
    assert n_in == N_MATH + N_CODE == kept + dropped + failed
    stats = json.loads((out / "stats.json").read_text())
    by_math, by_code = stats["by_filter"]["math"], stats["by_filter"]["code"]
    rejected_math = sum(by_math["dropped"].values()) + sum(by_math.get("failed", {}).values())
    rejected_code = sum(by_code["dropped"].values()) + sum(by_code.get("failed", {}).values())
    # the plain rows all pass; every adversarial program fails but the daemon's, whose add() answers right
    daemons = sum(1 for k in range(0, N_CODE, 25) if list(ADVERSARIAL_CODE)[(k // 25) % 6] == "setsid_daemon")
    assert rejected_math <= 20 and rejected_code == 20 - daemons, (by_math, by_code)
    rejected = [
        r
        for part in ("dropped", "failed")
        for p in (out / part).glob("*.parquet")
        for r in pq.read_table(p).to_pylist()
    ]
    assert all(r["reason"] for r in rejected)
    code_reasons = {r["reason"] for r in rejected if r["verdicts"] and r["verdicts"][-1]["filter"] == "code"}
    assert code_reasons <= {
        "timeout",
        "memory_limit",
        "output_limit",
        "runtime_error",
        "wrong_answer",
        "process_limit",
    }, code_reasons


def live_in_session(sid: int) -> list[str]:
    live = []
    for p in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                live.append(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:120]}")
        except (ProcessLookupError, PermissionError):
            continue
    return live
