"""Stage kinds: one module per kind, each registering itself with @register_stage on import.

Every module in this package is imported here so that the registry knows every kind. Stage modules keep heavy
imports (torch, transformers, trl, datasets) inside their functions: `reasonforge validate` and `ls` stay fast.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
