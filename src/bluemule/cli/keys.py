"""``bluemule keys …``: the development release-signing key."""

from __future__ import annotations

import click

from bluemule.cli.common import emit_json, fail
from bluemule.home import KeyFileError, generate_signing_key, load_signing_key, signing_key_path


@click.group()
def keys() -> None:
    """The release-signing key ($BLUEMULE_HOME/keys, default ~/.bluemule/keys)."""


def _describe(path: str, public: bytes, key_id: bytes, as_json: bool, verb: str) -> None:
    info = {"path": path, "public_key": public.hex(), "key_id": key_id.hex()}
    if as_json:
        emit_json(info)
    else:
        click.echo(f"{verb} {path}\npublic key {info['public_key']}\nkey id     {info['key_id']}")


@keys.command()
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing key (devices trusting the old one will refuse new releases).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def generate(force: bool, as_json: bool) -> None:
    """Create the development signing key (Ed25519, file mode 0600)."""
    try:
        path, key = generate_signing_key(force=force)
    except KeyFileError as exc:
        fail(str(exc))
    _describe(str(path), key.public_key, key.key_id, as_json, "created")


@keys.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(as_json: bool) -> None:
    """Show the public half of the signing key (never the private key)."""
    try:
        key = load_signing_key()
    except KeyFileError as exc:
        fail(str(exc))
    _describe(str(signing_key_path()), key.public_key, key.key_id, as_json, "key")
