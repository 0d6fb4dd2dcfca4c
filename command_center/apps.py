from __future__ import annotations

from django.apps import AppConfig


class CommandCenterConfig(AppConfig):
    name = "command_center"
    verbose_name = "Command Center"

    def ready(self) -> None:
        from command_center.broadcast import broadcaster
        from sessions_app import hooks

        hooks.register("session_changed", broadcaster.session_changed)
        hooks.register("sessions_deleted", broadcaster.sessions_deleted)
