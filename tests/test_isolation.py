"""The web process never loads the Telnyx SDK (1.3-2 s and ~65 MB it must not pay for)."""

from __future__ import annotations

import textwrap

from tests.conftest import run_json_script

SERVE_A_FEW_REQUESTS = textwrap.dedent(
    """
    import asyncio, json, sys
    from config.asgi import application
    from asgiref.testing import ApplicationCommunicator

    async def get(path):
        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
                 "headers": [(b"host", b"localhost")], "scheme": "http", "http_version": "1.1",
                 "server": ("localhost", 80), "client": ("127.0.0.1", 5000), "root_path": ""}
        comm = ApplicationCommunicator(application, scope)
        await comm.send_input({"type": "http.request", "body": b""})
        start = await comm.receive_output(10)
        await comm.wait(10)
        return start["status"]

    async def main():
        statuses = [await get(p) for p in ("/", "/api/webrtc/status", "/admin/login/")]
        from django.core.management import call_command  # what the web process imports too
        import telephony.web.client, telephony.web.views  # noqa
        print(json.dumps({"statuses": statuses,
                          "telnyx": sorted(m for m in sys.modules if m.split(".")[0] == "telnyx")}))

    asyncio.run(main())
    """
)


def test_isolation__web_process_never_imports_telnyx(subprocess_env: dict[str, str]) -> None:
    report = run_json_script(SERVE_A_FEW_REQUESTS, subprocess_env)
    assert report["statuses"][0] == 200
    assert report["statuses"][1] in (200, 503)
    assert report["statuses"][2] == 200
    assert report["telnyx"] == []
