from django.urls import path

from frontend.views import auth, compare, concepts, datasets, graph, guidance, launch, leaderboards, models, pages, runs, sweeps

urlpatterns = [
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("", pages.home, name="home"),
    path("datasets/", datasets.dataset_list, name="datasets"),
    path("datasets/<int:dataset_id>/", datasets.dataset_detail, name="dataset-detail"),
    path("datasets/<int:dataset_id>/preview/<str:name>", datasets.dataset_preview_image, name="dataset-preview-image"),
    path("models/", models.model_list, name="models"),
    path("models/<int:design_id>/", models.model_detail, name="model-detail"),
    path("runs/", runs.run_list, name="runs"),
    path("runs/new/", launch.run_launch, name="run-launch"),
    path("runs/new/lr-finder/", guidance.run_lr_finder, name="run-lr-finder"),
    path("runs/compare/", compare.run_compare, name="run-compare"),
    path("runs/<int:run_id>/", runs.run_detail, name="run-detail"),
    path("sweeps/", sweeps.sweep_list, name="sweeps"),
    path("sweeps/new/", sweeps.sweep_new, name="sweep-new"),
    path("sweeps/<int:sweep_id>/", sweeps.sweep_detail, name="sweep-detail"),
    path("leaderboards/", leaderboards.leaderboard_page, name="leaderboards"),
    path("leaderboards/pin/", leaderboards.leaderboard_pin, name="leaderboard-pin"),
    path("graph/", graph.graph_page, name="graph"),
    path("concepts/", concepts.concept_list, name="concepts"),
    path("concepts/<slug:slug>/", concepts.concept_detail, name="concept-detail"),
    path("projects/", pages.projects, name="projects"),
    path("projects/new/", pages.project_create, name="project-create"),
    path("projects/<int:project_id>/members/", pages.project_member_set, name="project-member-set"),
    path("fleet/", pages.fleet, name="fleet"),
    path("fleet/workers/<int:worker_id>/", pages.worker_detail, name="worker-detail"),
    path("status/", pages.status, name="status"),
]
