"""Explanations where choices are made: ``{% explain "weight-decay" %}`` draws an ⓘ linking to the
concept's page, whose hover shows what the concept is and when to use it (explain.js turns the title into
a tooltip); ``{% concept_tip "adam" %}`` is that text alone (an <option>'s title); and
``{% concept_explanations_json %}`` gives the page every concept's hover text for options drawn by JavaScript.

Texts an admin edited are plain text: Django's escaping applies to all of them.
"""
from __future__ import annotations

from django import template
from django.utils.html import format_html, json_script

from kg_app.concepts import concept_tooltips

register = template.Library()
_CACHE_ATTRIBUTE = "_trainyard_concept_tooltips"


def _tooltips(context) -> dict[str, dict]:
    """Read once per request, however many ⓘ a form draws (its fields are separate includes)."""
    request = getattr(context, "request", None)
    if request is None:
        return concept_tooltips()
    if not hasattr(request, _CACHE_ATTRIBUTE):
        setattr(request, _CACHE_ATTRIBUTE, concept_tooltips())
    return getattr(request, _CACHE_ATTRIBUTE)


def tip_text(entry: dict) -> str:
    return f"{entry['name']}: {entry['what']}" + (f" When to use it: {entry['when']}" if entry["when"] else "")


@register.simple_tag(takes_context=True)
def explain(context, slug):
    """The ⓘ for a concept; nothing for an empty or unknown slug (an option without a concept)."""
    entry = _tooltips(context).get(slug or "")
    if entry is None:
        return ""
    return format_html('<a class="explain" href="{}" data-concept="{}" title="{}" aria-label="About {}">i</a>',
                       entry["url"], slug, tip_text(entry), entry["name"])


@register.simple_tag(takes_context=True)
def concept_tip(context, slug):
    entry = _tooltips(context).get(slug or "")
    return tip_text(entry) if entry else ""


@register.simple_tag(takes_context=True)
def concept_explanations_json(context, element_id="concept-explanations"):
    return json_script(_tooltips(context), element_id)
