"""Message signing: HMAC-SHA256 over a task's id, envelope and payload.

With a signing key, every message an app enqueues carries ``signature``; a worker of an
app with keys decodes only messages whose signature one of its keys verifies. Anything
else (unsigned, signed with an unknown key, altered or forged) is dead-lettered with the
reason and its payload is never deserialized. Keys rotate: sign with the new key and keep
the old one in ``verify_keys`` until no message signed with it is left.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import replace

from .errors import ConfigurationError, RediqError
from .message import ENVELOPE_FIELDS, TaskMessage

__all__ = ["InvalidSignatureError", "MessageSigner"]

_VERSION = "v1"


class InvalidSignatureError(RediqError):
    """A message's signature is missing, made with an unknown key, or does not match."""


def _key_bytes(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < 16:
        raise ConfigurationError(
            "a signing key must be at least 16 bytes; generate one with"
            " `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return raw


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _signed_bytes(message: TaskMessage) -> bytes:
    fields = {name: getattr(message, name) for name in ENVELOPE_FIELDS if name != "signature"}
    fields["groups"] = list(message.groups)
    if message.flow is not None:  # absent when unset: signatures of earlier builds still verify
        fields["flow"] = message.flow.to_json()
    envelope = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return b"\0".join(
        (b"rediq-" + _VERSION.encode(), message.id.encode(), envelope, message.payload)
    )


class MessageSigner:
    """Signs with ``signing_key``; verifies with it and every key in ``verify_keys``."""

    def __init__(
        self, signing_key: str | bytes | None = None, verify_keys: Iterable[str | bytes] = ()
    ) -> None:
        self._signing = _key_bytes(signing_key) if signing_key is not None else None
        keys = [self._signing] if self._signing is not None else []
        keys += [_key_bytes(k) for k in verify_keys]
        self._verifying = {_key_id(k): k for k in keys}

    @property
    def verifies(self) -> bool:
        """Whether this app checks signatures (it has at least one key)."""
        return bool(self._verifying)

    def sign(self, message: TaskMessage) -> TaskMessage:
        if self._signing is None:
            return message
        digest = hmac.new(self._signing, _signed_bytes(message), hashlib.sha256).hexdigest()
        return replace(message, signature=f"{_VERSION}:{_key_id(self._signing)}:{digest}")

    def verify(self, message: TaskMessage) -> None:
        """Raise :class:`InvalidSignatureError` (saying why) unless a key verifies it."""
        if not message.signature:
            raise InvalidSignatureError("unsigned message: this app accepts only signed ones")
        version, _, rest = message.signature.partition(":")
        key_id, _, digest = rest.partition(":")
        key = self._verifying.get(key_id)
        if version != _VERSION or key is None:
            raise InvalidSignatureError(
                f"signed with an unknown key ({message.signature[:12]}...): add the key to"
                " verify_keys if it is an old one being rotated out"
            )
        expected = hmac.new(key, _signed_bytes(message), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest):
            raise InvalidSignatureError(
                "signature does not match: the message was altered or forged"
            )
