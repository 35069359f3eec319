from django.apps import AppConfig

SYNC_EVERY_S = 1.0


class KgAppConfig(AppConfig):
    name = "kg_app"
    verbose_name = "Knowledge graph"

    def ready(self) -> None:
        from django.conf import settings

        from kg_app import signals

        signals.connect()
        # The sync runs on beat's schedule; config/settings.py belongs to the foundation, so the entry is
        # added here (in place: Celery reads this same dict).
        settings.CELERY_BEAT_SCHEDULE.setdefault("kg-sync", {"task": "kg_app.tasks.kg_sync", "schedule": SYNC_EVERY_S,
                                                              "options": {"queue": "default", "expires": 30}})
