"""The vineyard command line: ``python -m vineyard.cli <command>`` or ``vineyard-cli``.

Commands: ls, get, head, put, del, names, persist, migrate, status, top, dump, load.
The server is the one ``--socket`` or ``--endpoint`` names, else the one the environment
names as for ``vineyard.connect()`` ($VINEYARD_IPC_SOCKET, $VINEYARD_RPC_ENDPOINT,
$VINEYARD_CONFIG, /var/run/vineyard-config.yaml); the CLI never starts a server. Every
command prints a table (rich) or, with ``--json``, one JSON document.
"""
from .commands import cli, main  # noqa: F401

__all__ = ["cli", "main"]
