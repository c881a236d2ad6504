"""Import an optional framework, or fail with the pip command that installs it."""

import importlib
from types import ModuleType

PINS = {
    "transformers": "transformers==5.23.0",
    "pytorch_lightning": "pytorch-lightning==2.6.6",
    "torch": "torch==2.13.0",
}


def require(module: str, for_what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{for_what} needs {module.split('.')[0]}: pip install {PINS[module.split('.')[0]]}") from exc
