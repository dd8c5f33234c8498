"""``python -m geo_service.cli``."""

from geo_service.cli.app import main

main()
