"""python manage.py kg_rebuild: empty the knowledge graph and project it again from SQL."""
import time

from django.core.management.base import BaseCommand, CommandError

from kg_app.services import graph_rebuild
from kg_app.store import GraphStoreError, get_graph_store


class Command(BaseCommand):
    help = "Rebuild the knowledge graph from the SQL database (the source of truth)."

    def handle(self, *args, **options):
        started = time.perf_counter()
        try:
            with get_graph_store() as store:
                counts = graph_rebuild(store=store)
        except GraphStoreError as exc:
            raise CommandError(f"the knowledge graph could not be rebuilt: {exc}") from None
        elapsed = time.perf_counter() - started
        self.stdout.write(f"rebuilt the knowledge graph: {counts['nodes']} nodes, {counts['relationships']} "
                          f"relationships in {elapsed:.1f} s")
