"""The operators' views run in the web process: they must not load the Telnyx SDK."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import run_json_script

SCRAPE = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment
    setup_test_environment()
    client = Client()
    statuses = [client.get(p).status_code
                for p in ("/metrics", "/admin/telephony/health/", "/admin/telephony/health.json")]
    import dashboard.ops.admin_views, dashboard.ops.health, telephony.web.metrics  # noqa
    try:
        import dashboard.ops.health_checks  # noqa  (only with django-health-check)
    except ImportError:
        pass
    print(json.dumps({"statuses": statuses,
                      "telnyx": sorted(m for m in sys.modules if m.split(".")[0] == "telnyx")}))
    """
)


@pytest.mark.django_db  # the subprocess reads the test database
def test_isolation__metrics_and_health_page_never_import_telnyx(
    subprocess_env: dict[str, str],
) -> None:
    report = run_json_script(SCRAPE, subprocess_env)
    assert report["statuses"] == [200, 302, 302]  # anonymous: the admin login
    assert report["telnyx"] == []


WITHOUT_HEALTH_CHECK = textwrap.dedent(
    """
    import importlib.util, json
    real = importlib.util.find_spec
    importlib.util.find_spec = (  # as if django-health-check were not installed
        lambda name, *a, **k: None if name.split(".")[0] == "health_check" else real(name, *a, **k)
    )
    import django
    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import setup_test_environment
    setup_test_environment()
    client = Client()
    print(json.dumps({"app": "health_check" in settings.INSTALLED_APPS,
                      "statuses": [client.get(p).status_code for p in ("/ht/", "/metrics")]}))
    """
)


@pytest.mark.django_db  # the subprocess reads the test database
def test_optional__the_product_works_without_django_health_check(
    subprocess_env: dict[str, str],
) -> None:
    report = run_json_script(WITHOUT_HEALTH_CHECK, subprocess_env)
    assert report == {
        "app": False,
        "statuses": [404, 200],
    }
