"""Third-party browser packages, served as static files from where their package manager put them.

Nothing is copied into the repository and nothing comes from a CDN: htmx from the django-htmx wheel,
Plotly.js from the plotly wheel, Cytoscape.js from npm (frontend/node_modules, `npm ci`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Warning as CheckWarning
from django.core.files.storage import FileSystemStorage

FRONTEND_DIR = Path(__file__).resolve().parent


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec and spec.origin else None


def vendor_files() -> dict[str, Path | None]:
    """Static path -> file on disk (None when its package is not installed). Each public name ends
    with the file's own name on disk, as collectstatic requires."""
    htmx = _package_dir("django_htmx")
    plotly = _package_dir("plotly")
    node_modules = FRONTEND_DIR / "node_modules"
    return {
        "vendor/htmx-2.min.js": htmx / "static" / "django_htmx" / "htmx-2.min.js" if htmx else None,
        "vendor/plotly.min.js": plotly / "package_data" / "plotly.min.js" if plotly else None,
        "vendor/cytoscape.min.js": node_modules / "cytoscape" / "dist" / "cytoscape.min.js",
    }


class VendorFinder(BaseFinder):
    """A staticfiles finder that exposes exactly the vendor files above, nothing else of their packages."""

    def check(self, **kwargs):
        missing = [name for name, path in vendor_files().items() if path is None or not path.exists()]
        if not missing:
            return []
        return [CheckWarning(f"front-end packages missing: {', '.join(missing)}",
                             hint="run `make up` or `cd frontend && npm ci` to install them", id="trainyard.W001")]

    def find(self, path, find_all=False, **kwargs):
        source = vendor_files().get(path)
        if source is None or not source.exists():
            return [] if find_all else None
        return [str(source)] if find_all else str(source)

    def list(self, ignore_patterns):
        # Public names equal the file names on disk, so collectstatic can copy prefix/basename.
        for name, source in vendor_files().items():
            if source is not None and source.exists():
                storage = FileSystemStorage(location=str(source.parent))
                storage.prefix = str(Path(name).parent)
                yield source.name, storage
