from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    """The isolated telephony service: models, client, worker, supervisor, sandbox."""

    name = "telephony"
    verbose_name = "Telephony"
    default_auto_field = "django.db.models.BigAutoField"
