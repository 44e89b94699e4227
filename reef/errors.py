"""Typed errors. Each store raises these; the server maps them to HTTP in one place."""

from __future__ import annotations


class ReefError(Exception):
    """Base of every error reef reports to a user. `status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ReefError):
    """The request or file was malformed: wrong type, missing field, bad format."""

    status = 400


class InvalidParameter(InvalidInput):
    """A module parameter is unknown, missing or of the wrong type."""


class NotAuthenticated(ReefError):
    status = 401


class PermissionDenied(ReefError):
    status = 403


class PasswordChangeRequired(PermissionDenied):
    """Signed in with a one-time password: only the account page answers until the person
    chooses their own."""


class NotFound(ReefError):
    status = 404


class Conflict(ReefError):
    status = 409


class TooLarge(ReefError):
    status = 413


class TooManyRequests(ReefError):
    """A limit on how often something may be tried (sign-in attempts) was reached."""

    status = 429


class Busy(ReefError):
    """The server has no room for this request now (a full query pool): try again later."""

    status = 429
