from django.urls import path

from kg_app.api import views

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="kg-search"),
    path("nodes/<path:key>/neighbourhood/", views.NeighbourhoodView.as_view(), name="kg-neighbourhood"),
    path("query/", views.QueryView.as_view(), name="kg-query"),
]
