"""Projects, memberships and roles."""
from __future__ import annotations

from django.db.models import QuerySet

from trainer_app.models import Membership, Project


def user_is_site_admin(user) -> bool:
    """Site admins manage the fleet, queues and users (DESIGN.md, Roles)."""
    return bool(user and user.is_authenticated and (user.is_superuser or user.is_staff))


def project_list(*, user) -> QuerySet[Project]:
    """The projects a user is a member of. Site admins are no exception: membership is explicit."""
    if not (user and user.is_authenticated):
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct()


def user_project_role(user, project: Project) -> str | None:
    if not (user and user.is_authenticated):
        return None
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def project_list_with_roles(*, user) -> list[tuple[Project, str]]:
    memberships = Membership.objects.filter(user=user).select_related("project").order_by("project__name")
    return [(membership.project, membership.role) for membership in memberships]
