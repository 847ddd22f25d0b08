"""pocketlm: run, evaluate and profile small language models packaged as bundles."""

from .errors import PocketLMError

__version__ = "0.1.0"
__all__ = ["PocketLMError", "__version__", "load"]


def load(path, **kwargs):
    """Load a bundle folder and return a Model ready to generate (see pocketlm.model.Model)."""
    from .model import Model

    return Model.load(path, **kwargs)
