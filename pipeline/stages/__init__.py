"""Stage kinds: one module per kind, each registering itself with @register_stage on import.

Every module in this package is imported here so that the registry knows every kind. Stage modules keep heavy
imports (torch, transformers, trl, datasets) inside their functions: `reasonforge validate` and `ls` stay fast.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

# A user's own stage kinds: REASONFORGE_PLUGINS=my_pkg.stages,other.module imports them (each registers itself).
import os as _os

for _plugin in filter(None, _os.environ.get("REASONFORGE_PLUGINS", "").split(",")):
    importlib.import_module(_plugin.strip())
