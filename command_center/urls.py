from __future__ import annotations

from django.urls import path

from command_center import views

urlpatterns = [
    path("", views.home, name="home"),
    path("sessions/", views.sessions_page, name="sessions"),
]
