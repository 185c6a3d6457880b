"""Errors a user can act on: each message names the file, key or expid and what was expected."""


class ConfigError(ValueError):
    """A config directory, expid, dataset id or hyperparameter is missing or inconsistent."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops before writing any result."""
