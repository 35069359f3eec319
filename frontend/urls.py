from django.urls import path

from frontend.views import auth, pages

urlpatterns = [
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("", pages.home, name="home"),
    path("datasets/", pages.datasets, name="datasets"),
    path("models/", pages.models, name="models"),
    path("runs/", pages.runs, name="runs"),
    path("sweeps/", pages.sweeps, name="sweeps"),
    path("leaderboards/", pages.leaderboards, name="leaderboards"),
    path("graph/", pages.graph, name="graph"),
    path("projects/", pages.projects, name="projects"),
    path("projects/new/", pages.project_create, name="project-create"),
    path("projects/<int:project_id>/members/", pages.project_member_set, name="project-member-set"),
    path("fleet/", pages.fleet, name="fleet"),
    path("status/", pages.status, name="status"),
]
