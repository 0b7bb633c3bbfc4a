"""Entry point: ``bluemule <group> <command>``."""

from __future__ import annotations

import click

from bluemule import __version__
from bluemule.cli.admin import admin
from bluemule.cli.admin_rollout import rollout
from bluemule.cli.admin_webhook import webhook
from bluemule.cli.bench import bench
from bluemule.cli.common import debug_tracebacks
from bluemule.cli.demo import demo
from bluemule.cli.emulator import emulator
from bluemule.cli.flash import flash
from bluemule.cli.image import image
from bluemule.cli.keys import keys
from bluemule.cli.particle import particle
from bluemule.cli.relay import relay
from bluemule.cli.server import server


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bluemule")
def cli() -> None:
    """bluemule: a phone or gateway as a data mule for offline Particle fleets.

    Exit status: 0 ok, 1 a check failed, 2 bad input or usage, 70 internal error.
    """


cli.add_command(image)
cli.add_command(bench)
cli.add_command(keys)
cli.add_command(flash)
cli.add_command(particle)
cli.add_command(emulator)
cli.add_command(server)
cli.add_command(relay)
cli.add_command(admin)
cli.add_command(demo)
admin.add_command(webhook)
admin.add_command(rollout)


def main() -> None:
    """Run the CLI; library errors become one-line messages, never tracebacks."""
    with debug_tracebacks():
        cli.main(prog_name="bluemule")
