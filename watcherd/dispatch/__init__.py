"""Sending the work: the outbox (due rows -> task messages, the backlog fed behind new photos),
the remote embedding protocol (jobs and results on the broker), and the writer of remote
results into the database.

Must not import: ``fleet``, ``worker``, ``watch``, ``web``, the CLI.
"""
