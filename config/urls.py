from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import health, metrics
from sessions_app.api import api

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("command_center.urls")),
]

# One answer for whatever escapes a view or a middleware: 503 + Retry-After when the database is
# away (JSON on the API, a page elsewhere), the error shape on the API otherwise.
handler404 = "command_center.edge.not_found"
handler500 = "command_center.edge.server_error"
