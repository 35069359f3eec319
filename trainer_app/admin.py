from django.contrib import admin

from trainer_app.models import Membership, Project, SiteSettings, Worker


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [MembershipInline]


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "last_heartbeat", "cpu_count", "ram_mb"]
    readonly_fields = ["last_heartbeat", "started_at"]


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["max_upload_bytes"]
