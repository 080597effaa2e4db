"""The "round trip and CPU per request" section of docs/BENCHMARKS.md (issue 14), from
``bench/onehop_bench.py``: the product against a raw redis-py echo and Celery 5, and a
page with 100 call buttons against the same page without them."""

from __future__ import annotations

from typing import Any

from bench.report import Check, _fmt, _get, _header, _med, _ok, _runs

PEERS = (
    ("redis_echo", "raw redis-py LPUSH + BRPOP echo"),
    ("celery_prefork", "Celery 5, prefork pool (1 process)"),
    ("celery_threads", "Celery 5, threads pool (8 threads)"),
)


def onehop_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    runs = _ok(res.get("onehop"))
    lines = ["## 7. Round trip and CPU per request, against the peers", ""]
    lines += _header(res.get("onehop"))
    if not runs:
        return lines

    def med(*path: str) -> float | None:
        return _med(_get(runs, *path))

    lines += [
        'Sequential round trips (after a warm-up), the same payload `{"user_id": 1}`; CPU '
        "per request = the server process tree's user + system CPU over the measured "
        "requests (its own kernel counters, so independent of how busy the machine is). "
        "Medians over the runs; per-run values in brackets.",
        "",
        "| round trip | p50 ms | p99 ms | server CPU ms / request |",
        "|---|---|---|---|",
    ]
    rows = [
        ("product/credential", "product, `credential.create` (sandbox, no latency)"),
        ("product/ping", "product, `health.ping` (no provider call)"),
        *PEERS,
    ]
    for key, label in rows:
        path = key.split("/")
        p50, p99, cpu = (_get(runs, *path, k) for k in ("p50_ms", "p99_ms", "cpu_ms_per_request"))
        if all(v is None for v in p50):
            continue
        lines.append(
            f"| {label} | {_fmt(_med(p50))} ({_runs(p50)}) | {_fmt(_med(p99))} ({_runs(p99)}) "
            f"| {_fmt(_med(cpu))} ({_runs(cpu)}) |"
        )
    lines.append("")
    echo50, echo99 = med("redis_echo", "p50_ms"), med("redis_echo", "p99_ms")
    c50, c99 = med("product", "credential", "p50_ms"), med("product", "credential", "p99_ms")
    if None not in (echo50, echo99, c50, c99):
        assert echo50 is not None and echo99 is not None and c50 is not None and c99 is not None
        checks.append(Check("Round trip over the redis-py echo, p50", round(c50 - echo50, 3),
                            1.0, "<=", "ms", f"echo p50 {_fmt(echo50)} ms"))  # fmt: skip
        checks.append(Check("Round trip over the redis-py echo, p99", round(c99 - echo99, 3),
                            3.0, "<=", "ms", f"echo p99 {_fmt(echo99)} ms"))  # fmt: skip
    for pool in ("prefork", "threads"):
        celery50 = med(f"celery_{pool}", "p50_ms")
        if celery50 and c50:
            checks.append(Check(f"Celery {pool} p50 / product p50", round(celery50 / c50, 2),
                                3.0, ">=", "x", f"Celery {_fmt(celery50)} ms"))  # fmt: skip
    worker_cpu = med("product", "credential", "cpu_ms_per_request")
    celery_cpu = min(
        (v for v in (med("celery_prefork", "cpu_ms_per_request"),
                     med("celery_threads", "cpu_ms_per_request")) if v is not None),
        default=None,
    )  # fmt: skip
    if worker_cpu is not None:
        versus = f"Celery's best {_fmt(celery_cpu)} ms" if celery_cpu else ""
        checks.append(Check("Worker CPU per request", worker_cpu, 1.5, "<=", "ms", versus))
    buttons, plain = med("page", "buttons_cpu_ms"), med("page", "plain_cpu_ms")
    if buttons and plain:
        lines += [
            f"A page of 100 numbers rendered with `{{% call_button %}}` each: "
            f"{_fmt(buttons)} ms CPU per render; the same page without the buttons: "
            f"{_fmt(plain)} ms.",
            "",
        ]
        checks.append(Check("Page with 100 call buttons, CPU per render", round(buttons / plain, 1),
                            1.2, "<=", "x", f"{_fmt(buttons)} vs {_fmt(plain)} ms"))  # fmt: skip
    return lines
