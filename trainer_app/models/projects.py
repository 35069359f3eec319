"""Projects and their members. Every domain object belongs to a project; access is per member."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """What a member may do in a project (see DESIGN.md, Roles)."""

    ANALYST = "analyst", "Analyst"  # datasets, designs, runs, sweeps
    LEAD = "lead", "Lead"  # all of that, plus leaderboards and baselines across the team
    ADMIN = "admin", "Admin"  # all of that, plus the project's members


ROLE_RANK = {Role.ANALYST: 1, Role.LEAD: 2, Role.ADMIN: 3}


class Project(models.Model):
    """A team's workspace: the unit of access for every dataset, design, run and sweep."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One user's role in one project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]
        ordering = ["project__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"
