from django.apps import AppConfig


class TrainerAppConfig(AppConfig):
    name = "trainer_app"
    verbose_name = "Trainyard"

    def ready(self) -> None:
        from trainer_app import signals  # noqa: F401  (connects the worker heartbeat)
