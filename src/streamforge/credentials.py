"""Provider password storage.

Passwords are never stored in plain text. Where the OS keyring has a usable
(non-plaintext, non-failing) backend and the ``keyring`` setting allows it, the
password lives in the keyring and the database holds only a reference.
Otherwise it is sealed with AES-256-GCM under a random 256-bit key kept in
``credential.key`` (mode 0600, tightened to it on use if found looser) in the
data dir.

Several nodes over one database (cluster mode) must open each other's
secrets, so they are all given the same key: ``STREAMFORGE_SECRET_KEY`` (or
``STREAMFORGE_SECRET_KEY_FILE``). When a shared key is set it replaces both
the key file and the keyring. Its :func:`key_fingerprint` (an HMAC of a
fixed label, so it reveals nothing of the key) is stored in ``app_state`` at
first use; :func:`check_fingerprint` makes a node whose key differs refuse to
start with one line instead of failing to decrypt in the middle of a stream.
:func:`reseal_all` re-seals every stored secret under a new key in one
transaction (``streamforge secret rotate``).

Blob formats stored in ``accounts.password_encrypted``::

    b"SF1G" + nonce(12) + ciphertext+tag     AES-256-GCM
    b"SF1K" + utf-8 reference                OS keyring entry (service "streamforge")

A wrong key, a missing key file or a corrupt blob raises
:class:`~streamforge.errors.CredentialError`; no message ever contains the
password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import keyring
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backends import fail
from keyring.errors import KeyringError, PasswordDeleteError

from streamforge.errors import CredentialError
from streamforge.filemodes import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tighten

KEY_FILE_NAME = "credential.key"
KEYRING_SERVICE = "streamforge"
_AAD = b"streamforge/provider-password/v1"
_GCM = b"SF1G"
_KEYRING = b"SF1K"
_NONCE_LEN = 12
_FINGERPRINT_LABEL = b"streamforge/secret-key-fingerprint/v1"

#: ``app_state`` key of the shared key's fingerprint.
FINGERPRINT_STATE_KEY = "secret_key_fingerprint"


def key_fingerprint(key: bytes) -> str:
    """16 hex digits that identify ``key`` without revealing it."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def generate_secret_key() -> bytes:
    """A fresh 256-bit sealing key."""
    return AESGCM.generate_key(bit_length=256)


def keyring_usable() -> bool:
    """Whether the OS keyring has a real backend (not the fail or plaintext ones)."""
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    priority = getattr(backend, "priority", 0)
    name = type(backend).__module__ + "." + type(backend).__name__
    return bool(priority and priority > 0) and "plaintext" not in name.lower()


class CredentialStore:
    """Seals and opens provider passwords."""

    def __init__(
        self, data_dir: Path, *, use_keyring: bool = True, shared_key: bytes | None = None
    ) -> None:
        if shared_key is not None and len(shared_key) != 32:
            raise CredentialError("the shared secret key must be 32 bytes")
        self._key_path = data_dir / KEY_FILE_NAME
        self._shared_key = shared_key
        self._use_keyring = shared_key is None and use_keyring and keyring_usable()

    @property
    def backend(self) -> str:
        if self._shared_key is not None:
            return "aes-256-gcm (shared key)"
        return "keyring" if self._use_keyring else "aes-256-gcm"

    @property
    def fingerprint(self) -> str | None:
        """The shared key's fingerprint, or None without a shared key."""
        return None if self._shared_key is None else key_fingerprint(self._shared_key)

    # -- key file ------------------------------------------------------------
    def _load_key(self, *, create: bool) -> bytes:
        if self._shared_key is not None:
            return self._shared_key
        # A key file copied in or restored from a backup may be group/other readable.
        tighten(self._key_path)
        try:
            key = self._key_path.read_bytes()
        except FileNotFoundError:
            if not create:
                raise CredentialError(
                    f"credential key file {self._key_path} is missing; stored provider "
                    "passwords cannot be decrypted (re-enter them with `account update`)"
                ) from None
            return self._create_key()
        except OSError as exc:
            raise CredentialError(
                f"credential key file {self._key_path} cannot be read ({exc.strerror})"
            ) from None
        if len(key) != 32:
            raise CredentialError(f"credential key file {self._key_path} is corrupt")
        return key

    def _create_key(self) -> bytes:
        key = AESGCM.generate_key(bit_length=256)
        self._key_path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(self._key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    # -- public API ----------------------------------------------------------
    def seal(self, password: str) -> bytes:
        """Encrypt ``password`` into an opaque blob for the database."""
        if self._use_keyring:
            reference = uuid.uuid4().hex
            try:
                keyring.set_password(KEYRING_SERVICE, reference, password)
            except KeyringError as exc:
                raise CredentialError(f"OS keyring refused to store a password: {exc}") from None
            return _KEYRING + reference.encode()
        key = self._load_key(create=True)
        nonce = secrets.token_bytes(_NONCE_LEN)
        return _GCM + nonce + AESGCM(key).encrypt(nonce, password.encode("utf-8"), _AAD)

    def open(self, blob: bytes) -> str:
        """Decrypt a blob made by :meth:`seal`."""
        blob = bytes(blob)
        if blob.startswith(_GCM) and len(blob) > len(_GCM) + _NONCE_LEN:
            key = self._load_key(create=False)
            nonce = blob[len(_GCM) : len(_GCM) + _NONCE_LEN]
            try:
                plain = AESGCM(key).decrypt(nonce, blob[len(_GCM) + _NONCE_LEN :], _AAD)
            except InvalidTag:
                raise CredentialError(
                    "a stored provider password cannot be decrypted: the credential key does "
                    "not match or the stored value is corrupt (re-enter it with `account update`)"
                ) from None
            return plain.decode("utf-8")
        if blob.startswith(_KEYRING):
            reference = blob[len(_KEYRING) :].decode("ascii", errors="replace")
            try:
                value = keyring.get_password(KEYRING_SERVICE, reference)
            except KeyringError as exc:
                raise CredentialError(f"OS keyring cannot be read: {exc}") from None
            if value is None:
                raise CredentialError(
                    "a stored provider password is missing from the OS keyring "
                    "(re-enter it with `account update`)"
                )
            return value
        raise CredentialError("a stored provider password is corrupt (unknown format)")

    def forget(self, blob: bytes) -> None:
        """Remove a keyring entry when its account is deleted (no-op for AES blobs)."""
        blob = bytes(blob)
        if blob.startswith(_KEYRING):
            try:
                keyring.delete_password(KEYRING_SERVICE, blob[len(_KEYRING) :].decode())
            except (PasswordDeleteError, KeyringError):
                return


class KeyMismatchError(CredentialError):
    """This node's shared key is not the one the database's secrets are sealed with."""


def check_fingerprint(
    stored: object, store: CredentialStore, save: Callable[[str], None]
) -> str | None:
    """Compare this node's key with the fingerprint ``stored`` in the database.

    With a shared key and no fingerprint yet, ``save`` stores ours (first use).
    A shared key that differs, or no shared key while the database has one,
    raises :class:`KeyMismatchError` with one line. Returns the fingerprint
    in force (None: no shared key anywhere).
    """
    mine = store.fingerprint
    expected = stored if isinstance(stored, str) and stored else None
    if mine is None:
        if expected is not None:
            raise KeyMismatchError(
                "this node has no STREAMFORGE_SECRET_KEY but the cluster's secrets are sealed "
                f"with the key of fingerprint {expected} (see `streamforge cluster join`)"
            )
        return None
    if expected is None:
        save(mine)
        return mine
    if not hmac.compare_digest(mine, expected):
        raise KeyMismatchError(
            "this node's secret key does not match the cluster's: "
            f"fingerprint {mine}, expected {expected}"
        )
    return mine


def reseal(blob: bytes, old: CredentialStore, new: CredentialStore) -> bytes:
    """``blob`` opened with ``old`` and sealed again with ``new``."""
    return new.seal(old.open(blob))
