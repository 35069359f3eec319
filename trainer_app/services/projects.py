"""Projects and their members."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from trainer_app.models import Membership, Project, Role
from trainer_app.selectors import user_is_site_admin, user_project_role

User = get_user_model()


@transaction.atomic
def project_create(*, name: str, created_by, description: str = "") -> Project:
    """Create a project; its creator becomes its first Admin member."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the project a name."})
    if Project.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"A project named {name!r} already exists: choose another name."})
    project = Project.objects.create(name=name, description=description, created_by=created_by)
    Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    return project


@transaction.atomic
def membership_set(*, project: Project, actor, username: str, role: str) -> Membership:
    """Add a user to a project or change their role. Only the project's Admins (or site admins) may."""
    if not (user_is_site_admin(actor) or user_project_role(actor, project) == Role.ADMIN):
        raise PermissionDenied("Only the project's admins can change its members.")
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}: use one of {', '.join(Role.values)}."})
    user = User.objects.filter(username=username.strip()).first()
    if user is None:
        raise ValidationError({"username": f"No user named {username!r}: ask an admin to create the account first."})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
