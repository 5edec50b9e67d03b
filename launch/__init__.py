"""Launch topologies: the local launcher and cluster manifests.

Installed as `gorila_tf.launch` (see setup.py).
"""
