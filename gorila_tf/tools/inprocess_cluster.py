"""Real `tf.distribute.Server`s in this process, on free loopback ports.

For tests and benchmarks that need a genuine ps/worker cluster without the
launcher: the servers speak gRPC over loopback like separate processes would,
while this process is the chief. Connecting to a cluster changes
TensorFlow's global context for good, so callers run this in a child process.
"""

from __future__ import annotations

from gorila_tf.runtime import cluster as cluster_lib


def start(num_ps: int, num_workers: int):
  """Starts the ps and worker servers; returns (chief task, servers)."""
  ports = cluster_lib.free_port_pairs(1 + num_ps + num_workers)
  spec = {'chief': [f'localhost:{ports[0]}'],
          'ps': [f'localhost:{p}' for p in ports[1:1 + num_ps]],
          'worker': [f'localhost:{p}' for p in ports[1 + num_ps:]]}
  servers = []
  for job, count in (('ps', num_ps), ('worker', num_workers)):
    for i in range(count):
      servers.append(cluster_lib.start_server(cluster_lib.make_task(spec, job, i)))
  return cluster_lib.make_task(spec, 'chief', 0), servers
