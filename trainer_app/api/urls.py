from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from trainer_app.api import datasets, designs, events, leaderboards, runs, views, weights

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/members/", views.ProjectMembersView.as_view(), name="api-project-members"),
    path("health/", views.HealthView.as_view(), name="api-health"),
    path("workers/", views.WorkerListView.as_view(), name="api-workers"),
    path("datasets/", datasets.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path("uploads/", datasets.UploadStartView.as_view(), name="api-uploads"),
    path("uploads/<int:upload_id>/", datasets.UploadChunkView.as_view(), name="api-upload"),
    path("models/", designs.DesignListView.as_view(), name="api-models"),
    path("models/validate/", designs.DesignValidateView.as_view(), name="api-models-validate"),
    path("models/<int:design_id>/", designs.DesignDetailView.as_view(), name="api-model"),
    path("models/<int:design_id>/layers/", weights.DesignLayersView.as_view(), name="api-model-layers"),
    path("weights/", weights.WeightsListView.as_view(), name="api-weights"),
    path("runs/", runs.RunListView.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<int:run_id>/cancel/", runs.RunCancelView.as_view(), name="api-run-cancel"),
    path("runs/<int:run_id>/resume/", runs.RunResumeView.as_view(), name="api-run-resume"),
    path("runs/<int:run_id>/events/", events.run_events, name="api-run-events"),
    path("runs/<int:run_id>/metrics/", runs.RunMetricsView.as_view(), name="api-run-metrics"),
    path("runs/<int:run_id>/checkpoints/<int:checkpoint_id>/", runs.CheckpointDownloadView.as_view(),
         name="api-run-checkpoint"),
    path("leaderboards/", leaderboards.LeaderboardView.as_view(), name="api-leaderboard"),
    path("leaderboards/export.csv", leaderboards.LeaderboardExportView.as_view(), name="api-leaderboard-export"),
    path("leaderboards/baseline/", leaderboards.BaselineView.as_view(), name="api-leaderboard-baseline"),
    path("queues/", views.QueueListView.as_view(), name="api-queues"),
    path("queues/<int:queue_id>/pause/", views.QueuePauseView.as_view(), name="api-queue-pause"),
    path("queues/<int:queue_id>/resume/", views.QueueResumeView.as_view(), name="api-queue-resume"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
