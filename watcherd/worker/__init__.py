"""The Celery workers' side: tasks that claim a row, call media code and store results.
"""
