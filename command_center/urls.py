from __future__ import annotations

from django.urls import path

from command_center import (
    agent_views,
    bulk_views,
    insights_views,
    new_session_views,
    token_views,
    views,
)

urlpatterns = [
    path("", views.home, name="home"),
    path("sessions/", views.sessions_page, name="sessions"),
    path("sessions/new/", new_session_views.session_new, name="session_new"),
    path("sessions/bulk/preview/", bulk_views.bulk_preview, name="bulk_preview"),
    path("sessions/bulk/", bulk_views.bulk_start, name="bulk_start"),
    path("bulk/<str:run_id>/", bulk_views.bulk_progress, name="bulk_progress"),
    path("bulk/<str:run_id>/abort/", bulk_views.bulk_abort, name="bulk_abort"),
    path("agents/<int:agent_id>/settings/", agent_views.agent_settings, name="agent_settings"),
    path("sessions/<str:session_id>/", views.session_detail, name="session_detail"),
    path("sessions/<str:session_id>/events/", views.session_events, name="session_events"),
    path("sessions/<str:session_id>/export.json", views.session_export, name="session_export"),
    path(
        "sessions/<str:session_id>/export.<str:ext>", views.session_export, name="session_export_as"
    ),
    path("sessions/<str:session_id>/print/", views.session_print, name="session_print"),
    path("sessions/<str:session_id>/message/", views.session_message, name="session_message"),
    path(
        "sessions/<str:session_id>/actions/<str:verb>/", views.session_action, name="session_action"
    ),
    path("sessions/<str:session_id>/clone/", views.session_clone, name="session_clone"),
    path("sessions/<str:session_id>/transfer/", views.session_transfer, name="session_transfer"),
    path("sessions/<str:session_id>/delete/", views.session_delete, name="session_delete"),
    path("insights/", insights_views.insights_page, name="insights"),
    path("insights/strip/", insights_views.insights_strip, name="insights_strip"),
    path("command-center/panel/", views.panel, name="panel"),
    path("tokens/", token_views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/revoke/", token_views.token_revoke, name="token_revoke"),
]
