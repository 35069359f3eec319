"""Number formatting for metric tables."""
from django import template

register = template.Library()


@register.filter
def sig(value, digits: int = 4) -> str:
    """A metric with `digits` significant digits; blank for None."""
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):.{int(digits)}g}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def signed(value, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{float(value):+.{int(digits)}g}"
