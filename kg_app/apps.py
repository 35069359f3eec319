from django.apps import AppConfig

class KgAppConfig(AppConfig):
    name = "kg_app"
    verbose_name = "Knowledge graph"

    def ready(self) -> None:
        from kg_app import signals

        signals.connect()
