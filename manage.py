#!/usr/bin/env python
"""Django's command-line utility for Trainyard (`python manage.py up` starts the whole stack)."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        # One line that says what is wrong and how to fix it, never a wall of traceback.
        print(f"trainyard: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
