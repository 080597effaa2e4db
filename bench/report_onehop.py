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


def ratio_checks(res: dict[str, Any], checks: list[Check]) -> None:
    """Issue 14's ratios over figures sections 2 and 3 measure: throughput against the
    ideal (concurrency / latency), the 503's p99 against the trivial view's."""
    worker = _ok(res.get("worker"))
    rates = [x for r in worker for x in (r.get("throughput_rps") or [])]
    concurrency = _med(_get(worker, "concurrency"))
    rate = _med(rates)
    if rate is not None and concurrency:
        ideal = concurrency / 0.2
        name = "One worker, 200 ms latency, 100 callers / ideal"
        checks.append(Check(name, round(rate / ideal, 2), 0.8, ">=", "x",
                            f"{_fmt(rate, 1)} of {ideal:g} req/s"))  # fmt: skip
    http = _ok(res.get("http"))
    p99, floor = (
        _med(_get(http, "call_503", "p99_ms")),
        _med(_get(http, "trivial_latency", "p99_ms")),
    )
    if p99 is not None and floor:
        checks.append(Check("503 answer p99 / trivial async view p99", round(p99 / floor, 2),
                            1.5, "<=", "x", f"{_fmt(p99)} vs {_fmt(floor)} ms"))  # fmt: skip


def onehop_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    ratio_checks(res, checks)
    runs = _ok(res.get("onehop"))
    lines = ["## 11. Round trip and CPU per request, against the peers", ""]
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
    ping_cpu = med("product", "ping", "cpu_ms_per_request")
    # Issue 14: at most 1.5 ms, and below Celery's: two checks each, so that neither hides.
    for name, cpu in (
        ("Worker CPU per request", worker_cpu),
        ("Worker CPU per request, `health.ping` (no provider call)", ping_cpu),
    ):
        if cpu is None:
            continue
        versus = f"Celery's best {_fmt(celery_cpu)} ms" if celery_cpu else ""
        checks.append(Check(name, cpu, 1.5, "<=", "ms", versus))
        if celery_cpu:
            checks.append(Check(f"{name} / Celery's best", round(cpu / celery_cpu, 2), 1.0,
                                "<=", "x", f"{_fmt(cpu)} vs {_fmt(celery_cpu)} ms"))  # fmt: skip
    lines += page_section(med, checks)
    return [*lines, *PROFILE.splitlines(), ""]


def page_section(med: Any, checks: list[Check]) -> list[str]:
    """The page with 100 call buttons: the product's contacts page (the headline), and a
    bare list of numbers, the worst case for the ratio."""
    demo, demo_plain = med("page", "demo_cpu_ms"), med("page", "demo_plain_cpu_ms")
    buttons, plain = med("page", "buttons_cpu_ms"), med("page", "plain_cpu_ms")
    if not (buttons and plain):
        return []
    cold, floor = med("page", "buttons_cold_cpu_ms"), med("page", "empty_tags_cpu_ms")
    lines = [
        "Pages of 100 numbers for a logged-in agent, the service ready "
        "(`python -m bench.onehop_bench --page-only`), CPU per render, the median of "
        "interleaved renders:",
        "",
        "| page | CPU ms / render | / the same page without buttons |",
        "|---|---|---|",
    ]
    if demo and demo_plain:
        lines += [
            f"| the contacts page (`/`, the base layout, a name, company and number a row), "
            f"without buttons | {_fmt(demo_plain)} | 1 |",
            f"| the contacts page with its `{{% call_button %}}` | {_fmt(demo)} | "
            f"{demo / demo_plain:.2f}x |",
        ]
    lines.append(f"| a bare list, `<li>{{{{ n }}}}</li>`, without buttons | {_fmt(plain)} | 1 |")
    rows = [
        ("the list with `{% call_button n %}`, rendered again (the same contacts)", buttons),
        ("the list with `{% call_button n %}`, 100 numbers never seen (caches emptied)", cold),
        ("the list with a tag that returns nothing: Django's own cost of 100 tags", floor),
    ]
    lines += [f"| {name} | {_fmt(v)} | {v / plain:.1f}x |" for name, v in rows if v]
    lines.append("")
    if demo and demo_plain:
        checks.append(Check("Page with 100 call buttons (the contacts page), CPU per render",
                            round(demo / demo_plain, 2), 1.2, "<=", "x",
                            f"{_fmt(demo)} vs {_fmt(demo_plain)} ms"))  # fmt: skip
    return lines


# What the profiles said (kept by hand: a profile is read, not regenerated by every run).
PROFILE = """\
### Where the worker's CPU goes, and why targets are missed

Reproduce: `make bench-deps`, then `python -m bench.onehop_bench --n 3000 --no-celery
--profile /tmp/worker.txt` (py-spy 0.4.3 on the worker, 500 Hz, raw stacks while the 3000
requests run; samples in `select` and in idle executor threads are not counted). Run of
2026-11-30 21:40 UTC on a quiet machine (load about 1), `credential.create` with the user's
credential cached, before the worker ran on uvloop (asyncio's own loop), share of the
worker's busy samples:

| where | share |
|---|---|
| provider call: the Telnyx SDK's `create_token` over httpx + aiohttp, its models | 34.5% |
| intake pop (`receive_or_idle`: one script, then the backup clean-up) | 18.8% |
| reply push (`LPUSH` + `PEXPIRE`, one `MULTI`) | 10.2% |
| claim (`SET NX PX`) | 7.9% |
| presence touch + credentials version (one pipeline) | 6.3% |
| event loop: scheduling, socket writes, task switches | 22.1% |
| ORM | 0% (a cache hit) |

Figures taken earlier in this wave on the same code, at a load average of 6 to 15 from
other work, were 2 to 8 times worse (worker CPU 5.23 ms per `credential.create`, one worker
at 0.47x the ideal, the 503's p99 3.0x): CPU per request too grows on a crowded machine
(cache misses, migrations between cores), and so does every latency. The table above is
from one quiet run; compare ratios within a run.

- **Milliseconds move with the machine; ratios to a same-run peer less so.** Three runs of
  this section on the same worker code: 2026-11-30 22:07 (platform fc-v857), 2026-12-01
  00:13 and 00:38 (fc-v669, a host about 1.6x slower; the last one the full `make bench`
  of a fresh clone). Celery's best CPU per no-op task: 0.79, 1.27, 1.45 ms; the raw echo's
  0.20, 0.27, 0.36 ms; the worker's per `credential.create` 1.35, 2.16, 3.19 ms (1.71x,
  1.70x, 2.20x Celery's best); per `health.ping` 0.54, 0.83, 0.89 ms (0.68x, 0.65x, 0.61x).
  The first run met the 1.5 ms CPU and 3 ms p99 targets; the later two do not.
- **Worker CPU per request, `credential.create`** (1.7x Celery's no-op): a third of it is
  the provider call through the generated Telnyx SDK, which a Celery no-op does not make;
  without it (`health.ping`, the same intake, claim and reply) the isolation costs 0.65x
  Celery's best. The rest is five Redis round trips per request (pop, its clean-up, claim,
  presence + version, reply), each paying redis-py's packing and a socket write (hiredis,
  redis-py's C parser, was measured: no difference at these sizes). uvloop took the
  figure from 1.69 to 1.35 ms on the faster host.
- **Round trip over the redis-py echo, and against Celery** (Celery's no-op faster, 3x
  asked): the figure includes the provider call, an HTTP round trip to the sandbox that
  the echo and the Celery no-op do not make (section 1: 0.82 ms p50 when the worker's
  code is called in-process); `health.ping` round trips 0.6 ms over the echo, twice as
  fast as Celery's no-op, not three times.
- **503 answer p99 against a trivial view** (1.47x to 1.77x over the runs of 2026-12-01,
  per run 1.3x to 1.9x: the p99 of 500 requests is noisy; missed). Reproduce: `python -m
  bench.http_bench --n 300 --runs 1 --profile /tmp/503.txt`, then `python -m
  bench.spy_summary /tmp/503.txt get_user sessions/backends db/backends
  close_old_connections csrf.py MiddlewareMixin`. Of daphne's busy samples while it
  answers 503s: reading the user 19.3% (the session row 12.2%, then the user row), 13.0%
  in the database backend, most of it opening a connection (Django under ASGI runs each
  request's sync code on a thread of its own, so each request opens one; SQLite's first
  statement on a new WAL connection alone takes 0.25 ms), closing it 3.3%, the CSRF check
  2.9%. The rest the trivial view pays too: Django's middleware, each a thread hop in and
  out (21.8% here, 28.9% of the trivial view's). Two changes this session: the login reads
  the user inside the authentication middleware's own thread hop
  (`telephony.web.api.AuthenticationMiddleware`) instead of in two more hops from the
  view (A/B on one host, 1500 requests each, in turn: daphne's CPU per 503 from 2.05x to
  1.85x the trivial view's, p99 from about 2.0x to 1.65x); and on PostgreSQL, where a new
  connection costs a TCP connect, authentication and a server process, Django's psycopg
  pool keeps them: the 503's p50 went from 13.1-13.9 ms to 6.4-7.1 ms against the trivial
  view's 3.4-4.3 ms (the same A/B, `"pool"` taken out of `config/settings.py` for the
  before). The last gap is the session and user reads themselves, which a 503 for a
  logged-in user cannot skip without trusting a cache of them across processes.
- **Page with 100 call buttons**: met on the product's contacts page (a table with a
  name, a company and a number a row, in the base layout): 100 buttons add about 16%.
  On a bare list of numbers (`<li>{{ n }}</li>`) they cost about 2.5x, and no tag can
  reach 1.2x there: the same list with a tag that returns `""` already costs 2x
  (Django's own cost of calling a tag is about that of the row). Before this wave each
  button cost about 0.6 ms (cProfile: 60% building it, `reverse()` three times and
  phonenumbers parsing the number twice; 31% rendering `telephony/call_button.html`; 8%
  `dataclasses.asdict`). Now `{% call_button %}` is a template node of its own: what a
  page's buttons share (URLs, the state, the CSRF cookie) is worked out once per request,
  its URLs once per process; a number is parsed once per process; a button's markup, a
  pure function of the page and the tag's arguments, is rendered once, and a button the
  request has rendered before costs resolving its arguments and one dict lookup, about as
  much as a `{{ variable }}` (2.5 µs, measured with `timeit`). A page of numbers never seen
  is still parsing (about half, phonenumbers' validation) and template rendering (the
  other half): about 0.13 ms a button.
"""
