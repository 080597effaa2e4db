from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    """The isolated telephony service: models, client, worker, supervisor, sandbox."""

    name = "telephony"
    verbose_name = "Telephony"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the signals that tell workers' credential caches about changed rows.
        from telephony import credential_cache  # noqa: F401
