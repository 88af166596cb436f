"""Sending the work: the outbox (due rows -> task messages, the backlog fed behind new photos),
the remote embedding protocol (jobs and results on the broker), the writer of remote
results into the database, and the configured model's identity they are built with
(``current_model``).

Must not import: ``fleet``, ``worker``, ``watch``, ``web``, the CLI.
"""
