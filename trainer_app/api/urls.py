from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from trainer_app.api import views

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/members/", views.ProjectMembersView.as_view(), name="api-project-members"),
    path("health/", views.HealthView.as_view(), name="api-health"),
    path("workers/", views.WorkerListView.as_view(), name="api-workers"),
    path("queues/", views.QueueListView.as_view(), name="api-queues"),
    path("queues/<int:queue_id>/pause/", views.QueuePauseView.as_view(), name="api-queue-pause"),
    path("queues/<int:queue_id>/resume/", views.QueueResumeView.as_view(), name="api-queue-resume"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
