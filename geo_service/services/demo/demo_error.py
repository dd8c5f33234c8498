"""The demo's one error type, kept apart so every module of the package can raise it."""


class DemoError(Exception):
    """The demo cannot be generated (French message for the command line and the admin page)."""
