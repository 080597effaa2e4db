"""The worker template, in this process: the supervisor's decisions with a fake template,
the control protocol against a fake template served from a thread, and the fork itself
(:func:`telephony.worker.template.fork_worker`) with the worker's main replaced.

What only the real processes show (the SDK loaded once, connections, a rolling restart
running new code) is in ``test_worker_template.py``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import threading
from typing import Any

import pytest

from telephony.procutil import PR_SET_CHILD_SUBREAPER, prctl
from telephony.supervisor.policy import PolicyConfig, RestartPolicy
from telephony.supervisor.template import (
    DOWN,
    READY,
    STARTING,
    ForkedWorker,
    TemplateUnavailable,
    WorkerTemplate,
)
from telephony.worker import process as worker_process
from telephony.worker import template as worker_template
from tests.telephony import test_supervisor_decisions as decisions
from tests.telephony.test_supervisor_decisions import FakeProc, Spawner


class FakeTemplate:
    """Stands in for :class:`WorkerTemplate`: the test says when it is ready or dies."""

    def __init__(self, spawner: Spawner, clock: Any) -> None:
        self.spawner, self.clock = spawner, clock
        self.state, self.generation, self.pid = DOWN, 0, 0
        self.started_at, self.load_seconds, self.restart_at = 0.0, 0.5, 0.0
        self.why_down = "not started"
        self.changes: list[str] = []
        self.forked: list[FakeProc] = []

    def adopt_orphans(self) -> bool:
        return True

    def start(self) -> None:
        self.state, self.generation, self.pid = STARTING, self.generation + 1, 77 + self.generation
        self.started_at = self.clock()

    def renew(self) -> None:
        self.start()

    def stop(self, *, why: str = "retired") -> None:
        self.state = DOWN

    def poll(self, now: float) -> str:
        return self.changes.pop(0) if self.changes else ""

    def becomes(self, state: str, change: str) -> None:
        self.state = state
        self.changes.append(change)

    def fork(self, *, spare: bool) -> FakeProc:
        if self.state != READY:
            raise TemplateUnavailable(f"template {self.state} ({self.why_down})")
        proc = self.spawner(f"gen{self.generation}", spare=spare)
        self.forked.append(proc)
        return proc


harness = decisions.harness  # the fixture: a supervisor with fake children and clock


def with_template(h: Any) -> FakeTemplate:
    fake = FakeTemplate(h.spawner, h.clock)
    h.sup.template = fake
    h.sup._start_template()  # what run() does first
    return fake


def test_supervisor__holds_until_the_template_is_ready_then_forks(harness) -> None:
    h = harness(workers=2)
    fake = with_template(h)
    h.tick(1.0)
    assert h.spawner.procs == []  # no cold start while the template loads
    fake.becomes(READY, "ready")
    h.tick(0.05)
    assert len(fake.forked) == 2 and h.spawner.procs == fake.forked
    assert h.events.of("template_ready")[0]["generation"] == 1
    assert h.events.of("template_fallback") == []
    assert h.sup.record().template_state == READY


def test_supervisor__a_template_slower_than_the_start_timeout_means_cold_starts(harness) -> None:
    h = harness(workers=1)
    with_template(h)
    h.tick(9.9)
    assert h.spawner.procs == []
    h.tick(0.2)  # start_timeout is 10 s in the harness
    assert len(h.spawner.procs) == 1
    [fallback] = h.events.of("template_fallback")
    assert "template starting" in fallback["why"]


def test_supervisor__dead_template_means_a_cold_start_and_an_event(harness) -> None:
    h = harness(workers=1, backoff_base=0.1, jitter=0.0)
    fake = with_template(h)
    fake.becomes(READY, "ready")
    h.tick()
    [first] = fake.forked
    first.beat()
    h.tick(0.05)
    fake.why_down = "exited with code -9"
    fake.becomes(DOWN, "died")
    first.exit(-9)
    h.tick()
    [died] = h.events.of("template_exited")
    assert "exited with code -9" in died["why"]
    h.tick(0.1)  # the worker's backoff: started cold, not held
    cold = h.spawner.alive()
    assert len(cold) == 1 and cold[0] not in fake.forked
    [fallback] = h.events.of("template_fallback")
    assert fallback["pid"] == cold[0].pid and fallback["template_state"] == DOWN


def test_supervisor__rolling_restart_forks_only_from_the_new_template(harness) -> None:
    h = harness(workers=2)
    fake = with_template(h)
    fake.becomes(READY, "ready")
    h.tick()
    old = list(fake.forked)
    for proc in old:
        proc.beat()
    h.tick(0.05)
    h.sup.rolling_restart()
    assert fake.generation == 2 and fake.state == STARTING
    h.tick(0.5)
    assert len(h.spawner.procs) == 2  # nothing started from the old generation
    fake.becomes(READY, "ready")
    h.tick()
    [standby] = h.spawner.procs[2:]
    assert standby in fake.forked and fake.generation == 2
    standby.beat()
    h.tick(0.05)
    assert old[0].signals  # the first old worker is retired once its replacement serves


# -- the control protocol against a fake template served from a thread -------------------


class ThreadTemplate:
    """``launch`` for :class:`WorkerTemplate`: answers on the control socket from a thread."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.orders: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, sid: str, fd: int) -> subprocess.Popen[bytes]:
        sock = socket.socket(fileno=os.dup(fd))
        thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return subprocess.Popen(["sleep", "30"])

    def _serve(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as reader:
            sock.sendall(b'{"ready": {"load_seconds": 0.25}}\n')
            for line in reader:
                self.orders.append(json.loads(line))
                answer = self.answers.pop(0) if self.answers else None
                if answer is not None:
                    sock.sendall(json.dumps(answer).encode() + b"\n")


def ready_template(served: ThreadTemplate) -> WorkerTemplate:
    policy = RestartPolicy(PolicyConfig(backoff_base=0.5, jitter=0.0))
    template = WorkerTemplate("h:1", policy=policy, launch=served)
    template.start()
    for _ in range(200):
        if template.poll(0.0) == "ready":
            break
        threading.Event().wait(0.01)
    assert template.state == READY and template.load_seconds == 0.25
    return template


def test_worker_template__forks_on_order_and_falls_down_on_a_bad_answer() -> None:
    served = ThreadTemplate([{"pid": 4242}, {"error": "OSError: fork failed"}])
    template = ready_template(served)
    worker = template.fork(spare=True)
    assert isinstance(worker, ForkedWorker) and worker.pid == 4242
    assert served.orders == [{"fork": {"spare": True}}]
    with pytest.raises(TemplateUnavailable, match="fork failed"):
        template.fork(spare=False)
    assert template.state == DOWN and template.proc is None  # killed, restarted after backoff
    assert template.restart_at == pytest.approx(template.clock() + 0.5, abs=0.5)
    with pytest.raises(TemplateUnavailable, match="template down"):
        template.fork(spare=False)


def test_worker_template__no_answer_in_time_is_a_failure(monkeypatch) -> None:
    monkeypatch.setattr("telephony.supervisor.template.FORK_TIMEOUT", 0.05)
    template = ready_template(ThreadTemplate([None]))
    with pytest.raises(TemplateUnavailable, match="no answer within"):
        template.fork(spare=False)
    assert template.state == DOWN


# -- the fork itself ------------------------------------------------------------------------


def test_fork_worker__child_is_adopted_reseeded_and_cut_from_the_template(monkeypatch) -> None:
    """Forks from this process, which plays the supervisor and the template at once."""
    assert prctl(PR_SET_CHILD_SUBREAPER, 1)
    closed: list[bool] = []
    monkeypatch.setattr(worker_template.connections, "close_all", lambda: closed.append(True))
    r, w = os.pipe()
    handlers_before = [id(h) for h in logging.getLogger().handlers]
    parent_next = random.getstate()

    def fake_run_worker(*, concurrency: int | None, spare: bool) -> None:
        report = {
            "ppid": os.getppid(),
            "random": random.random(),
            "spare": spare,
            "handlers": [id(h) for h in logging.getLogger().handlers],
        }
        try:
            os.fstat(control_fd)
            report["control_open"] = True
        except OSError:
            report["control_open"] = False
        os.write(w, json.dumps(report).encode())
        os._exit(0)

    monkeypatch.setattr(worker_process, "run_worker", fake_run_worker)
    ours, theirs = socket.socketpair()
    control_fd = theirs.fileno()
    try:
        reports = []
        for _ in range(2):
            pid = worker_template.fork_worker(theirs, os.getpid(), spare=True)
            assert ForkedWorker(pid).wait(timeout=10) == 0  # our child now: waitpid works
            reports.append(json.loads(os.read(r, 65536)))
    finally:
        ours.close()
        theirs.close()
        os.close(r)
        os.close(w)
    random.setstate(parent_next)
    mine = random.random()
    assert closed == [True, True]  # connections closed before each fork
    assert all(rep["ppid"] == os.getpid() and rep["spare"] for rep in reports)
    assert not any(rep["control_open"] for rep in reports)
    assert len({mine, reports[0]["random"], reports[1]["random"]}) == 3
    if handlers_before:
        assert not set(reports[0]["handlers"]) & set(handlers_before)


def test_supervisor__after_a_wipe_out_one_forked_restart_goes_at_once(harness) -> None:
    h = harness(workers=2, spares=1, backoff_base=0.5, jitter=0.0, max_restarts=5)
    fake = with_template(h)
    fake.becomes(READY, "ready")
    h.tick()
    for proc in h.spawner.alive():
        proc.beat()
    h.tick(0.05)
    [spare] = [p for p in h.spawner.alive() if p.spare]
    spare.beat()
    h.tick(0.05)
    actives = [p for p in h.spawner.alive() if not p.spare]
    spare.exit(-9)  # the spare is seen first, in a pass of its own
    h.tick()
    for proc in actives:
        proc.exit(-9)
    h.tick()
    delays = [e["restart_in"] for e in h.events.of("worker_exited")]
    assert delays == [0.5, 0.0, 2.0]  # the spare; then one active at once, one backing off
    assert len(h.spawner.alive()) == 1  # forked in the same pass
    assert h.sup.policy.in_window() == 3  # every death still counts towards the intensity
