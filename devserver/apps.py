from django.apps import AppConfig


class DevserverConfig(AppConfig):
    """Local development: ``serve`` (the whole product on embedded defaults) and the sandbox."""

    name = "devserver"
    verbose_name = "Local development server"
