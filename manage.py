"""``python manage.py --help``: hiscore's command line (a Flask CLI group)."""

from app.cli import cli

if __name__ == "__main__":
    cli()
