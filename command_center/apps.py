from __future__ import annotations

from django.apps import AppConfig


class CommandCenterConfig(AppConfig):
    name = "command_center"
    verbose_name = "Command Center"

    def ready(self) -> None:
        # The broadcaster imports models: only once the app registry is ready.
        from command_center.broadcast import broadcaster, notify_access_changed  # noqa: PLC0415
        from sessions_app import hooks  # noqa: PLC0415

        hooks.register("session_changed", broadcaster.session_changed)
        hooks.register("sessions_deleted", broadcaster.sessions_deleted)
        hooks.register("access_changed", notify_access_changed)
