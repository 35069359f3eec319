from django.urls import path

from kg_app.api import concepts, views

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="kg-search"),
    path("nodes/<path:key>/neighbourhood/", views.NeighbourhoodView.as_view(), name="kg-neighbourhood"),
    path("paths/", views.PathsView.as_view(), name="kg-paths"),
    path("questions/", views.QuestionListView.as_view(), name="kg-questions"),
    path("questions/<slug:name>/", views.QuestionView.as_view(), name="kg-question"),
    path("query/", views.QueryView.as_view(), name="kg-query"),
]

# Mounted at /api/concepts/ (config/urls.py), beside the graph's /api/kg/.
concept_urlpatterns = [
    path("", concepts.ConceptListView.as_view(), name="concept-list-api"),
    path("<slug:slug>/", concepts.ConceptDetailView.as_view(), name="concept-detail-api"),
]
