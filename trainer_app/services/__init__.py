"""Domain actions (writes), as plain functions named <entity>_<action> with keyword-only arguments.
Views, API views, Celery tasks and management commands are thin callers of these."""
from trainer_app.services.fleet import worker_heartbeat, worker_mark_offline, workers_mark_offline_stale
from trainer_app.services.projects import membership_set, project_create

__all__ = ["membership_set", "project_create", "worker_heartbeat", "worker_mark_offline", "workers_mark_offline_stale"]
