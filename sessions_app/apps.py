from __future__ import annotations

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Runtimes hear about queued commands over the channel layer (see runtime/consumer.py).
        from sessions_app import hooks
        from sessions_app.runtime.consumer import notify_command_queued

        hooks.register("command_queued", notify_command_queued)
