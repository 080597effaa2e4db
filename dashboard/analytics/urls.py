"""The analytics page's routes, mounted under ``/admin/telephony/`` ahead of the admin's own
URLs (so ``analytics/`` is not taken for a model). Staff only through ``admin_view``."""

from django.contrib import admin
from django.urls import path

from dashboard.analytics import views

app_name = "telephony_analytics"

urlpatterns = [
    path("analytics/", admin.site.admin_view(views.analytics_page), name="page"),
    path("analytics.csv", admin.site.admin_view(views.analytics_csv), name="csv"),
]
