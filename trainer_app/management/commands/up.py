import signal
import sys

from django.core.management.base import BaseCommand

from config.env import ConfigError
from config.stack import Stack, plan_from_environment


class Command(BaseCommand):
    help = ("Start the whole Trainyard stack on embedded defaults: the bundled Redis + FalkorDB (unless "
            "REDIS_URL / KG_URL are set), SQLite under var/ (unless DATABASE_URL is set), one Celery worker, "
            "beat and the web server on 127.0.0.1:8000 (TRAINYARD_HOST, TRAINYARD_PORT). Prints where to log "
            "in. Ctrl-C stops every process it started; data under var/ (TRAINYARD_VAR_DIR) is kept.")

    def handle(self, *args, **options):
        try:
            stack = Stack(plan_from_environment(), out=self.stdout._out)
        except ConfigError as error:
            self._fail(error)
        signal.signal(signal.SIGINT, lambda *_: stack.stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stack.stopping.set())
        code = 0
        try:
            stack.start()
            if not stack.stopping.is_set():
                stack.say(stack.banner())
                code = stack.supervise()
        except ConfigError as error:
            print(f"trainyard: {error}", file=sys.stderr, flush=True)
            code = 2
        finally:
            stack.say("stopping…")
            stack.stop()
            stack.say("stopped.")
        sys.exit(code)

    def _fail(self, error: ConfigError):
        print(f"trainyard: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
