"""Talking to the broker: the Celery app, the outbox, the embedded spool transport.
"""
