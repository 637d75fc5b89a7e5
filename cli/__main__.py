"""``python -m cli`` runs the ``agglo`` console script (used to start the worker beside ``agglo serve``)."""

from cli.main import main

main()
