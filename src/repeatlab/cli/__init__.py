"""The ``repeatlab`` command: a thin typer layer over the public Python API."""
