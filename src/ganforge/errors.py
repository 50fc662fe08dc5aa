"""User-facing errors: raised for bad input, printed as one clear message without a traceback."""

from __future__ import annotations


class GanforgeError(Exception):
    """A problem with the user's config, data, checkpoint or environment, with its fix."""
