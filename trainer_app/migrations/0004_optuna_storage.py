"""Optuna's RDB storage tables, in the same database (DESIGN.md: created once, never by concurrent workers).

Not atomic: on SQLite, Django's migration transaction would hold the write lock that Optuna's own
connection needs. Optuna's tables are Optuna's: reversing this migration leaves them.
"""
from django.db import migrations


def create_optuna_tables(apps, schema_editor):
    from trainer_app.studies import create_tables

    create_tables(schema_editor.connection.settings_dict)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("trainer_app", "0003_sweeps")]
    operations = [migrations.RunPython(create_optuna_tables, migrations.RunPython.noop, elidable=False)]
