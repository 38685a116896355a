"""The stage runner: one run of a stage (``fit``, ``cache``, ``test``, ``fuse``) from its config.

- ``runner.py``: builds the DataModule, the LightningModule and the Trainer of a config and runs it;
- ``loggers.py``: the run's CSV (resumable) and W&B loggers;
- ``config_check.py``: the keys a stage's code reads, checked before anything runs.

Imports every room to its left (codec, data, models, lit, evaluation, and ``deploy.fused_model`` to
write ``model.json``); only :mod:`ip_tsn.cli` imports it. Import the submodules directly.
"""
