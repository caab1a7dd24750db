"""``python -m smartbatt`` runs the command line."""

from smartbatt.cli.main import main

main()
