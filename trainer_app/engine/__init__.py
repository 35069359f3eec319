"""The training engine: PyTorch only, never Django. Run it as `python -m trainer_app.engine SPEC.json`
under torchrun; it reads a JSON run spec and is the only place that trains."""
