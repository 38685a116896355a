"""Deployment: fused I+P prediction on any video and export of the stream networks.

- ``fused_model.py``: the fused model as a file (``model.json`` of ``ip-tsn fuse``, ``fusion.json``
  of ``ip-tsn export``: streams, weights, network files, preprocessing, class names);
- ``predict.py``: ``FusedPredictor`` (``ip-tsn predict``), each stream's test-protocol preprocessing;
- ``export.py``: TorchScript + ONNX of every stream network and ``fusion.json`` (``ip-tsn export``).

Imports :mod:`ip_tsn.codec`, :mod:`ip_tsn.data`, :mod:`ip_tsn.models` and, from :mod:`ip_tsn.lit`, the
checkpoint reader (``lit/checkpoint_info.py``) and ``lit/modules.load_module``; never the stage runner
(:mod:`ip_tsn.stages`) or the CLI. Import the submodules directly (nothing is loaded here).
"""
