"""GET /api/metrics/: the fleet in Prometheus' text exposition format (version 0.0.4), for the monitoring
admins already run. Admins only, by session or `Authorization: Token …` (Prometheus: `authorization:
{type: Token, credentials: …}` in the scrape config)."""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView

from trainer_app.api.permissions import IsSiteAdmin
from trainer_app.selectors.fleet import fleet_metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


class Exposition:
    """Lines of the text format: each metric family with its HELP and TYPE, then its samples."""

    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for suffix, labels, value in samples:
            rendered = ",".join(f'{key}="{_label(label)}"' for key, label in labels.items())
            self.lines.append(f"{name}{suffix}{{{rendered}}} {_number(value)}" if rendered
                              else f"{name}{suffix} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(figures: dict) -> str:
    out = Exposition()
    queues = figures["queues"]
    out.family("trainyard_queue_depth", "gauge", "Runs waiting in each queue.",
               [("", {"queue": name}, queue["queued"]) for name, queue in queues.items()])
    out.family("trainyard_queue_active", "gauge", "Runs starting or running in each queue.",
               [("", {"queue": name}, queue["active"]) for name, queue in queues.items()])
    out.family("trainyard_queue_paused", "gauge", "1 when the queue is paused.",
               [("", {"queue": name}, int(queue["paused"])) for name, queue in queues.items()])
    out.family("trainyard_workers", "gauge", "Registered workers by status.",
               [("", {"status": status}, count) for status, count in figures["workers"].items()])
    out.family("trainyard_gpus", "gauge", "GPUs of workers that are not offline: busy (held by a starting or "
               "running run) or free.", [("", {"state": state}, count) for state, count in figures["gpus"].items()])
    out.family("trainyard_runs", "gauge", "Runs by status.",
               [("", {"status": status}, count) for status, count in figures["runs"].items()])
    for name, key, help_text in (
            ("trainyard_run_duration_seconds", "run_duration", "Finished runs, from start to finish."),
            ("trainyard_run_wait_seconds", "run_wait", "Started runs, from launch to their (last) start.")):
        out.family(name, "summary", help_text, [("_count", {}, figures[key]["count"]),
                                                ("_sum", {}, float(figures[key]["sum"]))])
    return out.text()


class PlainTextRenderer(BaseRenderer):
    """Lets a scraper that accepts only text/plain through content negotiation (and read a refusal)."""

    media_type = "text/plain"
    format = "txt"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return (data if isinstance(data, str) else str((data or {}).get("detail", data))).encode()


class MetricsView(APIView):
    permission_classes = [IsSiteAdmin]
    renderer_classes = [JSONRenderer, PlainTextRenderer]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request):
        return HttpResponse(render_metrics(fleet_metrics()), content_type=CONTENT_TYPE)
