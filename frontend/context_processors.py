from django.urls import reverse

from trainer_app.selectors import project_list_with_roles, user_is_site_admin

# (url name, label, admins only). Order is the order of the navigation.
SECTIONS = [
    ("datasets", "Datasets", False),
    ("models", "Models", False),
    ("runs", "Runs", False),
    ("sweeps", "Sweeps", False),
    ("leaderboards", "Leaderboards", False),
    ("graph", "Knowledge graph", False),
    ("projects", "Projects", False),
    ("fleet", "Fleet", True),
    ("status", "Status", True),
]


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    is_admin = user_is_site_admin(user)
    current = request.resolver_match.url_name if request.resolver_match else None
    entries = [
        {"name": name, "label": label, "url": reverse(name), "active": _in_section(current, name)}
        for name, label, admin_only in SECTIONS
        if is_admin or not admin_only
    ]
    return {"nav_entries": entries, "is_site_admin": is_admin,
            "user_projects": project_list_with_roles(user=user)}


def _in_section(current: str | None, section: str) -> bool:
    """`runs` is active on runs, run-detail and run-launch; `leaderboards` on leaderboard-pin…"""
    if not current:
        return False
    singular = section[:-1] if section.endswith("s") else section
    return current == section or current.startswith(singular + "-")
