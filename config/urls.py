from django.contrib import admin
from django.urls import include, path

from kg_app.api.urls import concept_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("trainer_app.api.urls")),
    path("api/kg/", include("kg_app.api.urls")),
    path("api/concepts/", include(concept_urlpatterns)),
    path("", include("frontend.urls")),
]
