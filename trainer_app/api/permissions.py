"""Per-object access for the API: an object is visible only to members of its project."""
from rest_framework.permissions import BasePermission

from trainer_app.selectors import user_is_site_admin


class IsSiteAdmin(BasePermission):
    message = "Only admins can see the fleet, queues and users."

    def has_permission(self, request, view) -> bool:
        return user_is_site_admin(request.user)
