"""URL configuration: the demo pages, the admin, the telephony API and the operators' views."""

import importlib.util

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard.ops.metrics import metrics

urlpatterns = [
    # Before the admin's own URLs, which would read "health" as a model of "telephony".
    path("admin/telephony/", include("dashboard.ops.admin_urls")),
    path("admin/telephony/", include("dashboard.analytics.urls")),
    path("admin/", admin.site.urls),
    path("api/webrtc/", include("telephony.web.urls")),
    path("metrics", metrics, name="metrics"),
    # The agents' login (not staff, so not the admin's); LOGIN_URL points here.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.demo.urls")),
]

if importlib.util.find_spec("health_check"):  # optional: pip install django-health-check
    from health_check.views import HealthCheckView

    urlpatterns.insert(
        0,
        path(
            "ht/",
            HealthCheckView.as_view(
                checks=[
                    "health_check.Database",
                    "health_check.Cache",
                    "dashboard.ops.health_checks.TelephonyHealthCheck",
                ]
            ),
            name="health_check",
        ),
    )
