"""The engine is pure PyTorch: importing it and every submodule loads no django module."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import importlib, pkgutil, sys
import trainer_app.engine as engine
names = [info.name for info in pkgutil.iter_modules(engine.__path__)]
for name in names:
    importlib.import_module("trainer_app.engine." + name)
import trainer_app.engine.__main__
print(len(names), ",".join(sorted(module for module in sys.modules if module.split(".")[0] == "django")))
"""


def test_importing_the_engine_loads_no_django_module():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    count, django_modules = result.stdout.strip().split(" ", 1) if " " in result.stdout.strip() else \
        (result.stdout.strip(), "")
    assert int(count) >= 15, "the probe should import every engine module"
    assert django_modules == "", f"the engine imported {django_modules}"


def test_the_spec_and_designer_modules_import_without_torch():
    probe = ("import sys, trainer_app.engine.config, trainer_app.engine.design, trainer_app.engine.exit_codes, "
             "trainer_app.engine.dataset_format; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
