"""One module (or package) per CLI command; :mod:`curricurun.cli` only wires Typer to them."""
