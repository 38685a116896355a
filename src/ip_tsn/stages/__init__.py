"""The stage runner: one run of a stage (``fit``, ``cache``, ``test``, ``fuse``) from its config.

- ``runner.py``: builds the DataModule, the LightningModule and the Trainer of a config and runs it;
- ``loggers.py``: the run's CSV (resumable) and W&B loggers;
- ``config_schema.py``: the dataclass schema of a stage config (``OmegaConf.structured``);
- ``config_check.py``: every piece of a config checked against it before anything runs.

Imports every room to its left (codec, data, models, lit, evaluation, and ``deploy.fused_model`` to
write ``model.json``); only :mod:`ip_tsn.cli` imports it. Import the submodules directly.
"""
