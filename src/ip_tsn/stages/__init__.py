"""The stage runner: one run of a stage (``fit``, ``cache``, ``test``, ``fuse``) from its config.

- ``build.py``: the DataModule, the LightningModule and the Trainer a config describes;
- ``fit_stage.py``, ``cache_stage.py``, ``eval_stage.py`` (``test``), ``fuse_stage.py``: one file per
  command, each running its stage from a config;
- ``loggers.py``: the run's CSV (resumable) and W&B loggers;
- ``provenance.py``: what made a run (versions, git commit, CPU kind), for its ``fit.json``;
- ``config_schema.py``: the dataclass schema of a stage config (``OmegaConf.structured``);
- ``config_check.py``: every piece of a config checked against it before anything runs;
- ``failures.py``: what stopped a command (out of memory, a DataLoader worker's shared memory or death).

Imports every room to its left (codec, data, models, lit, evaluation, and ``deploy.fused_model`` to
write ``model.json``); only :mod:`ip_tsn.cli` imports it. Import the submodules directly.
"""
