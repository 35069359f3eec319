import json

from django.core.management.base import BaseCommand

from trainer_app.seed import seed_all


class Command(BaseCommand):
    help = ("Create what a new Trainyard needs: the `admin` account (password from TRAINYARD_ADMIN_PASSWORD, "
            "else generated and kept in var/admin-password), the `demo` project and the scikit-learn sample datasets "
            "(digits, iris, wine, breast cancer) in it. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the admin credentials as JSON")

    def handle(self, *args, **options):
        credentials = seed_all()
        if options["json"]:
            self.stdout.write(json.dumps(credentials.__dict__))
        elif credentials.password:
            self.stdout.write(f"admin password ({credentials.source}): {credentials.password}")
        else:
            self.stdout.write("admin account exists; its password was changed since it was generated")
