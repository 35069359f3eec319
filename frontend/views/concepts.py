"""Concept pages: the ontology's concepts with their explanations, and for each one the runs and sweeps
of the user's projects that applied it and how they fared. Site admins edit an explanation here."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render

from kg_app import concepts, services
from kg_app.explanations import PART_TITLES, PARTS
from trainer_app.selectors import user_is_site_admin


@login_required
def concept_list(request):
    entries = concepts.concept_list()
    by_slug = {entry["slug"]: entry for entry in entries}
    roots = [entry for entry in entries if not any(parent in by_slug for parent in entry["is_a"])]
    groups = [{"concept": root, "members": _descendants(root, by_slug)} for root in roots]
    return render(request, "frontend/concepts/list.html", {"groups": groups, "count": len(entries)})


def _descendants(root: dict, by_slug: dict) -> list[dict]:
    """The concepts under ``root``, depth first, each with its depth (for indentation)."""
    found, stack, seen = [], [(slug, 1) for slug in reversed(root["narrower"])], {root["slug"]}
    while stack:
        slug, depth = stack.pop()
        if slug in seen or slug not in by_slug:
            continue
        seen.add(slug)
        found.append({"concept": by_slug[slug], "depth": depth})
        stack.extend((child, depth + 1) for child in reversed(by_slug[slug]["narrower"]))
    return found


@login_required
def concept_detail(request, slug: str):
    concept = concepts.concept_get(slug)
    if concept is None:
        raise Http404("No such concept.")
    can_edit = user_is_site_admin(request.user)
    errors, status = {}, 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only site admins can edit the explanations of concepts.")
        texts = {part: request.POST.get(part, "").replace("\r\n", "\n") for part in PARTS}
        try:
            services.concept_explanation_update(slug=slug, actor=request.user, texts=texts)
        except ValidationError as error:
            errors, status = error.message_dict, 400
        else:
            return redirect(f"{concepts.concept_url(slug)}?saved=1")
    names = {entry["slug"]: entry["name"] for entry in concepts.concept_list()}
    usage = concepts.concept_usage(user=request.user, slug=slug)
    return render(request, "frontend/concepts/detail.html", {
        "concept": concept, "usage": usage, "can_edit": can_edit, "errors": errors,
        "saved": request.GET.get("saved") == "1", "edit_open": bool(errors),
        "parts": [{"name": part, "title": PART_TITLES[part], "text": concept["explanation"][part],
                   "value": request.POST.get(part, concept["explanation"][part]) if errors else
                   concept["explanation"][part], "errors": errors.get(part, [])} for part in PARTS],
        "broader": [(parent, names.get(parent, parent)) for parent in concept["is_a"]],
        "narrower": [(child, names.get(child, child)) for child in concept["narrower"]],
        "requires": [(needed, names.get(needed, needed)) for needed in concept["requires"]],
        "graph_node": f"concept:{slug}",
    }, status=status)
