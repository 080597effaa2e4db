"""Demo pages."""

from django.urls import path

from dashboard.demo import views

app_name = "dashboard"

urlpatterns = [
    path("", views.contacts, name="contacts"),
]
