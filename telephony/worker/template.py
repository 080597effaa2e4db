"""The worker template: a preloaded process that forks new workers in milliseconds.

``manage.py telephony_worker --template --control-fd N`` (started by the supervisor, never
by hand) sets Django up and imports the worker code and the Telnyx SDK (the seconds a cold
worker spends), then waits on its control socket. It opens no Redis or database
connection, starts no thread and no event loop, so nothing it holds is unsafe to fork.

The control protocol is one JSON line each way (:mod:`telephony.supervisor.template` is
the other end): the template says ``{"ready": ...}`` once loaded; each order
``{"fork": {"spare": bool}}`` is answered ``{"pid": N}`` or ``{"error": "..."}``.
End of file on the socket (the supervisor closed it or died) ends the template.

Each worker is forked twice (template -> short-lived middle -> worker) and the middle
exits at once, so the worker is orphaned and re-parented to the supervisor, which is a
child subreaper (``PR_SET_CHILD_SUBREAPER``): the supervisor waits on the worker's pid
and reads its exit status from the kernel exactly as for a worker it spawned itself,
whether or not the template is still alive. The pid is reported only after the middle
has been reaped, that is after the re-parenting happened.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connections

from telephony.procutil import PR_SET_PDEATHSIG, TEMPLATE_NAME, prctl, set_process_name

logger = logging.getLogger(__name__)

REPARENT_WAIT = 2.0  # seconds a new worker waits to be handed to the supervisor


def preload() -> float:
    """Import what a worker needs before its first request; returns the seconds it took."""
    started = time.monotonic()
    import uvloop  # noqa: F401  (the worker's event loop, telephony.worker.process)

    import telephony.worker.main  # noqa: F401  (the worker code and, through the adapter, telnyx)
    from telephony.worker.adapter import preload_sdk

    preload_sdk()  # the SDK's lazy imports: seconds each fork would otherwise pay
    return time.monotonic() - started


def serve(control_fd: int) -> None:
    """The template's life: preload, say ready, fork on order until end of file."""
    supervisor_pid = os.getppid()
    set_process_name(TEMPLATE_NAME)
    gc.disable()  # no collections here: they leave freed holes in pages the forks share
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    seconds = preload()
    close_databases()
    # Everything loaded so far moves to a generation the collector never scans, so the
    # workers' collections do not write to (and so copy) the pages they share with us.
    gc.freeze()
    threads = threading.active_count()
    if threads != 1:  # forking a process with threads copies their locks mid-use
        logger.warning("[Telephony Template] %d threads running after preload", threads)
    _send(control, {"ready": {"pid": os.getpid(), "load_seconds": round(seconds, 3)}})
    reader = control.makefile("rb")
    for line in reader:
        try:
            order = json.loads(line)["fork"]
            answer: dict[str, Any] = {"pid": fork_worker(control, supervisor_pid, **order)}
        except Exception as e:
            logger.exception("[Telephony Template] fork failed")
            answer = {"error": f"{type(e).__name__}: {e}"}
        _send(control, answer)
    logger.info("[Telephony Template] control socket closed; exiting")


def close_databases() -> None:
    """Close every database connection, and a PostgreSQL pool with its threads: a fork
    must not inherit a pool whose threads did not come with it."""
    connections.close_all()
    for connection in connections.all(initialized_only=True):
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    control.sendall(json.dumps(message).encode() + b"\n")


def fork_worker(control: socket.socket, supervisor_pid: int, *, spare: bool = False) -> int:
    """Fork one worker (through a middle process that exits at once); returns its pid."""
    close_databases()  # nothing open is inherited, even if preloading opened it
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle: fork the worker, tell its pid, exit
        code = 1
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _worker(control, supervisor_pid, spare=spare)  # never returns
            os.write(w, str(pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(middle, 0)
    if not data or os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"the middle process failed (status {status})")
    return int(data)


def _worker(control: socket.socket, supervisor_pid: int, *, spare: bool) -> None:
    """In the new worker: cut the template's ties, then run the normal worker main."""
    code = 1
    try:
        fd = control.detach()  # close() would wait for serve()'s reader, which we never use
        os.close(fd)
        _close_inherited_loop()
        _adopted_by(supervisor_pid)
        set_process_name("tel-worker")  # a fork's argv still says --template; ps -o comm not
        gc.enable()  # the template's objects stay frozen: shared, never scanned
        random.seed()  # a fresh seed, not the template's state (os.urandom-backed)
        from django.utils.log import configure_logging

        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)  # fresh handlers
        from telephony.worker.process import run_worker

        run_worker(concurrency=None, spare=spare)  # exits the process itself
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _close_inherited_loop() -> None:
    """Close the idle event loop daphne creates at import (``daphne.server.twisted_loop``,
    in every process of this project, never run by a worker): its self-pipe sockets would
    otherwise be shared with the template and every other fork."""
    daphne_server = sys.modules.get("daphne.server")
    loop = getattr(daphne_server, "twisted_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()


def _adopted_by(supervisor_pid: int) -> None:
    """Wait until the supervisor is our parent, then die with it (as spawned workers do)."""
    deadline = time.monotonic() + REPARENT_WAIT
    while os.getppid() != supervisor_pid:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not re-parented to the supervisor (pid {supervisor_pid})")
        time.sleep(0.001)
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os._exit(1)
