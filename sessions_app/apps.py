from __future__ import annotations

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Runtimes hear about queued commands over the channel layer (see runtime/consumer.py).
        # The consumer imports models: only once the app registry is ready.
        from sessions_app import hooks  # noqa: PLC0415
        from sessions_app.runtime.consumer import (  # noqa: PLC0415
            notify_command_queued,
            notify_tokens_changed,
        )

        hooks.register("command_queued", notify_command_queued)
        hooks.register("tokens_changed", notify_tokens_changed)
