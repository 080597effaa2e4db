"""The health page's routes, mounted under ``/admin/telephony/`` ahead of the admin's own
URLs (so ``health/`` is not taken for a model). Every view goes through
``admin.site.admin_view``: staff only, never cached, CSRF on POST."""

from django.contrib import admin
from django.urls import path

from dashboard.ops import admin_views

app_name = "telephony_health"

urlpatterns = [
    path("health/", admin.site.admin_view(admin_views.health_page), name="page"),
    path("health.json", admin.site.admin_view(admin_views.health_data), name="data"),
    path(
        "health/actions/<slug:action>/",
        admin.site.admin_view(admin_views.health_action),
        name="action",
    ),
]
