from trainer_app.models.fleet import Worker, WorkerStatus
from trainer_app.models.projects import Membership, Project, Role

__all__ = ["Membership", "Project", "Role", "Worker", "WorkerStatus"]
