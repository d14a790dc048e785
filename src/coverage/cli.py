"""Command line: ``covplan`` (placeholder until the commands are wired)."""

import typer

app = typer.Typer()
