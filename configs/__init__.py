"""Named presets. Each module defines `get_config() -> GorilaConfig`.

Installed as `gorila_tf.configs` (see setup.py); pick one with `--config=NAME`.
"""
