"""Liveness, both halves: what a worker sends (its heartbeat, busy markers before each step,
Celery's worker events for Flower) and what the watcher makes of it (the liveness rules, the
monitor that writes ``workers`` and charges attempts, the reaper that ends stuck processes).

Must not import: ``worker``, ``watch``, ``web``, the CLI.
"""
