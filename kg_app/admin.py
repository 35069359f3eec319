from django.contrib import admin

from kg_app.models import Concept, OutboxEvent


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "is_a")
    search_fields = ("slug", "name")


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "entity", "object_id", "created_at", "processed_at", "attempts")
    list_filter = ("entity",)
