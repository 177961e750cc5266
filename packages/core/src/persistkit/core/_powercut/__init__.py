"""The power-cut filesystem: a FUSE filesystem that loses what a power cut may lose.

Public through `persistkit.core.testing` (imported only when used). The layers:
`_model` (the live and durable images, and the crash states; no FUSE), `_wire` (messages
between the processes), `_server` (the FUSE calls on a model, in a forked server process),
`_manager` (the process that owns a mount and forks its servers), `_client` (the test
process's `PowerCutFS`) and `_driver` (cuts at every barrier, at random points, under
several processes).
"""
