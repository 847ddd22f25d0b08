"""User-facing errors: each one is a clear sentence, printed by the CLI as one line."""


class PocketLMError(Exception):
    """Base class for every error pocketlm reports to a user (exit code 1 in the CLI)."""

    exit_code = 1


class SourceError(PocketLMError):
    """A model source that cannot be read: missing, truncated, unsafe or unreachable."""


class UnsupportedModelError(PocketLMError):
    """An architecture or model feature pocketlm does not export."""


class RecipeError(PocketLMError):
    """A compression recipe that cannot be applied as asked."""


class BundleError(PocketLMError):
    """A bundle that cannot be read: missing files, tampered, or from a newer schema."""


class BackendUnavailableError(PocketLMError):
    """A runtime or lowering toolchain that is not installed or cannot run here."""


class ConversionError(PocketLMError):
    """A lowering tool failed on a model it accepted; the message carries the tool's own words."""


class GenerationError(PocketLMError):
    """A generation request that cannot be served (e.g. a prompt longer than the context)."""


class TaskError(PocketLMError):
    """A task request the model or bundle cannot serve (e.g. a language its model card does not cover)."""


class TrainingError(PocketLMError):
    """Training, distillation or pruning input that cannot be used (empty data, mismatched tokenizers, a bad ratio)."""
