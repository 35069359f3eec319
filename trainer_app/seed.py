"""First-start data: the admin account, the demo project and its sample datasets. Safe to run on
every start."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from trainer_app.models import Membership, Project, Role

ADMIN_USERNAME = "admin"
DEMO_PROJECT = "demo"


@dataclass
class AdminCredentials:
    username: str
    password: str | None  # None when it was set earlier and is not known to us any more
    source: str  # "environment", "generated" or "unchanged"


def admin_password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password"


@transaction.atomic
def seed_admin() -> AdminCredentials:
    """The `admin` superuser. Its password comes from TRAINYARD_ADMIN_PASSWORD or is generated once,
    kept (mode 0600) under var/ and shown at every start until someone changes it."""
    User = get_user_model()
    from_env = os.environ.get("TRAINYARD_ADMIN_PASSWORD") or None
    user = User.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user = User(username=ADMIN_USERNAME, is_staff=True, is_superuser=True)
        password = from_env or secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
        if from_env:
            return AdminCredentials(ADMIN_USERNAME, password, "environment")
        _write_private(admin_password_file(), password)
        return AdminCredentials(ADMIN_USERNAME, password, "generated")
    if from_env:
        if not user.check_password(from_env):
            user.set_password(from_env)
            user.save(update_fields=["password"])
        return AdminCredentials(ADMIN_USERNAME, from_env, "environment")
    try:
        kept = admin_password_file().read_text().strip()
    except OSError:
        kept = None
    if kept and user.check_password(kept):
        return AdminCredentials(ADMIN_USERNAME, kept, "generated")
    return AdminCredentials(ADMIN_USERNAME, None, "unchanged")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


@transaction.atomic
def seed_demo_project(admin) -> Project:
    project, _ = Project.objects.get_or_create(
        name=DEMO_PROJECT,
        defaults={"description": "A project to try Trainyard in: sample datasets and your first runs.",
                  "created_by": admin},
    )
    Membership.objects.get_or_create(project=project, user=admin, defaults={"role": Role.ADMIN})
    return project


def seed_all() -> AdminCredentials:
    from trainer_app.services.queues import queues_ensure_defaults

    queues_ensure_defaults()
    credentials = seed_admin()
    admin = get_user_model().objects.get(username=ADMIN_USERNAME)
    project = seed_demo_project(admin)
    from trainer_app.services.datasets import datasets_seed_samples

    datasets_seed_samples(project=project, created_by=admin)
    return credentials
