"""SQLite: schema, migrations, every SQL statement. Knows nothing of Celery, click or config.
"""
