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
        _forget_token_accesses_on_writes()


def _forget_token_accesses_on_writes() -> None:
    """Any saved or deleted token, membership, user or agent, and any change of a token's
    agents, clears this process's token cache, however the write was made (services call
    hooks.forget_access for their bulk updates too)."""
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db.models.signals import m2m_changed, post_delete, post_save  # noqa: PLC0415

    from sessions_app import hooks  # noqa: PLC0415
    from sessions_app.models import Agent, ApiToken, TenantMembership  # noqa: PLC0415
    from sessions_app.selectors.tokens import forget_token_accesses  # noqa: PLC0415

    hooks.register_access_cache(forget_token_accesses)

    def forget(**_: object) -> None:
        forget_token_accesses()

    for model in (ApiToken, TenantMembership, Agent, get_user_model()):
        post_save.connect(forget, sender=model, weak=False, dispatch_uid=f"tokens-{model}")
        post_delete.connect(forget, sender=model, weak=False, dispatch_uid=f"tokens-del-{model}")
    m2m_changed.connect(
        forget, sender=ApiToken.agents.through, weak=False, dispatch_uid="tokens-agents"
    )
