"""What the command line needs before any other module: the version and the environment
variable that names the config file. Imports nothing, so any module may import it (the package's
``__init__`` re-exports both; importing them from there would close a circle through its lazy
``watcherd.celery``)."""

__version__ = "0.1.0"
#: The config file when no -c/--config is given.
ENV_VAR = "WATCHERD_CONFIG"
