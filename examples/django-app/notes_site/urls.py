from django.urls import path

from notes import views

urlpatterns = [
    path("", views.index),
    path("notes", views.notes),
    path("jobs", views.enqueue),
    path("jobs/<str:job_id>", views.job),
]
