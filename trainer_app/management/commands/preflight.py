from django.core.management.base import BaseCommand, CommandError

from trainer_app import health

FIXES = {
    "database": "start the database or fix DATABASE_URL (unset it to use SQLite under var/)",
    "broker": "start Redis or fix REDIS_URL (unset it to use the bundled server)",
    "graph": "start the graph server or fix KG_URL, KG_USER, KG_PASSWORD (unset KG_URL to use the bundled FalkorDB)",
}


class Command(BaseCommand):
    help = "Check that the database, the broker and the graph answer; one line per failure, with the fix."

    def handle(self, *args, **options):
        checks = {"database": health.check_database, "broker": health.check_broker, "graph": health.check_graph}
        failures = []
        for name, check in checks.items():
            report = check()
            if report["ok"]:
                self.stdout.write(f"{name}: ok ({report['url']}, {report['latency_ms']} ms)")
            else:
                failures.append(f"{name} at {report.get('url')} is unreachable ({report.get('error')}): {FIXES[name]}")
        if failures:
            raise CommandError("; ".join(failures))
