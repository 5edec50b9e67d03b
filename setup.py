"""gorila_tf: Gorila distributed DQN on TensorFlow, Reverb and ale-py.

`configs/` and `launch/` live at the top of the repository and install as
`gorila_tf.configs` and `gorila_tf.launch`. Exact versions of everything are
in requirements.lock; the ranges here are what the package is known to work
with (tests/test_packaging.py checks that the two agree).
"""

from setuptools import setup

INSTALL_REQUIRES = [
    'tensorflow==2.15.1',
    'dm-reverb==0.14.0',
    'tf-agents==0.19.0',
    'tensorflow-probability==0.23.0',
    'gymnasium>=1.0,<1.4',
    'ale-py>=0.12,<0.13',
    'numpy>=1.26,<2',
    'absl-py>=2.0',
    'matplotlib>=3.8',  # gorila-plot
]

setup(
    name='gorila_tf',
    version='0.1.0',
    description='Gorila (Nair et al. 2015) distributed DQN on TensorFlow '
                'ParameterServerStrategy, Reverb and ale-py',
    python_requires='>=3.11,<3.12',
    packages=['gorila_tf', 'gorila_tf.configs', 'gorila_tf.launch',
              'gorila_tf.agent', 'gorila_tf.runtime', 'gorila_tf.tools',
              'gorila_tf.lab', 'gorila_tf.lab.peers'],
    package_dir={'gorila_tf': 'gorila_tf', 'gorila_tf.configs': 'configs',
                 'gorila_tf.launch': 'launch'},
    package_data={'gorila_tf': ['data/reference/*.csv', 'data/reference/*.md']},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'test': ['pytest>=8', 'pytest-xdist>=3', 'pyyaml>=6'],
        # Peers run in their own virtualenv (gorila_tf/lab/peers/).
        'bench': ['psutil>=5'],
    },
    entry_points={'console_scripts': [
        'gorila-train=gorila_tf.train:cli',
        'gorila-launch=gorila_tf.launch.local:cli',
        'gorila-suite=gorila_tf.tools.suite:cli',
        'gorila-eval=gorila_tf.tools.evaluate:cli',
        'gorila-play=gorila_tf.tools.play:cli',
        'gorila-export=gorila_tf.tools.export:cli',
        'gorila-plot=gorila_tf.tools.plot:cli',
        'gorila-bench=gorila_tf.lab.bench:cli',
    ]},
)
