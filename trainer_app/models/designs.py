"""Model designs: a named, versioned spec (a preset or a list of layers) reusable on any dataset
whose shapes fit."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from trainer_app.models.projects import Project


class ModelDesign(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="designs")
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    spec = models.JSONField(help_text='{"preset": "small_cnn"} or {"layers": [...]}')
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "name", "version"], name="one_design_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def family(self) -> str:
        """The architecture family, for the knowledge graph and leaderboards."""
        preset = self.spec.get("preset")
        if preset:
            return {"mlp": "MLP", "small_cnn": "CNN", "vit_tiny": "Transformer",
                    "tab_transformer": "Transformer"}.get(preset, "ResNet" if preset.startswith("resnet") else preset)
        types = {layer.get("type") for layer in self.spec.get("layers", [])}
        if "SelfAttention" in types:
            return "Transformer"
        if "ResidualBlock" in types:
            return "ResNet"
        return "CNN" if "Conv2d" in types else "MLP"


class WeightsFile(models.Model):
    """An uploaded .safetensors file to fine-tune from. Checked on upload: a pickle is refused."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="weights_files")
    name = models.CharField(max_length=120)
    path = models.CharField(max_length=500, help_text="relative to MEDIA_ROOT, generated name")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    tensors = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
