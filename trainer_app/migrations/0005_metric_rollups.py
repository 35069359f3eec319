"""Per-block extremes of each metric series (MetricRollup), and the rollups of the points written before them."""
import django.db.models.deletion
from django.db import migrations, models


def build_rollups(apps, schema_editor):
    """Every existing series gets its rollups (the persister keeps them from now on)."""
    from trainer_app.services.metrics import metric_rollups_rebuild

    point_model = apps.get_model("trainer_app", "MetricPoint")
    rollup_model = apps.get_model("trainer_app", "MetricRollup")
    for run_id, name in point_model.objects.values_list("run_id", "name").distinct().iterator():
        metric_rollups_rebuild(run_id=run_id, name=name, point_model=point_model, rollup_model=rollup_model)


class Migration(migrations.Migration):
    dependencies = [("trainer_app", "0004_optuna_storage")]

    operations = [
        migrations.CreateModel(
            name="MetricRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=64)),
                ("block", models.BigIntegerField(help_text="step // ROLLUP_STEPS")),
                ("count", models.IntegerField(help_text="points in the block")),
                ("min_step", models.BigIntegerField()),
                ("min_value", models.FloatField()),
                ("max_step", models.BigIntegerField()),
                ("max_value", models.FloatField()),
                ("run", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          related_name="rollups", to="trainer_app.run")),
            ],
            options={"constraints": [models.UniqueConstraint(fields=("run", "name", "block"),
                                                             name="one_rollup_per_block")]},
        ),
        migrations.RunPython(build_rollups, migrations.RunPython.noop),
    ]
