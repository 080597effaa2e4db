from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The demo pages and the operators' telephony health page."""

    name = "dashboard"
    verbose_name = "Dashboard"
    default_auto_field = "django.db.models.BigAutoField"
