from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("trainer_app.api.urls")),
    path("api/kg/", include("kg_app.api.urls")),
    path("", include("frontend.urls")),
]
