"""The one error type of the adapter's registry side."""

from __future__ import annotations


class RegistryError(RuntimeError):
    """A registry operation failed; the message names the URI, model, version or alias involved."""
