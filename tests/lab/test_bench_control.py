"""The control-plane benchmark: its arithmetic, its report, and one short
real run of the smallest configuration of each measurement."""

import time

import pytest

from gorila_tf.lab import bench_control
from gorila_tf.lab import bench_report
from gorila_tf.launch import hosts

WINDOW_S = 1.0  # each real measurement; enough to see positive rates


def test_each_measurement_lasts_a_fifth_of_the_seconds_within_1_to_15():
  assert bench_control.window_seconds(30) == 6.0
  assert bench_control.window_seconds(2) == 1.0
  assert bench_control.window_seconds(600) == 15.0


def test_two_closures_per_worker_in_flight_unless_the_chief_keeps_more():
  assert bench_control.in_flight_for(workers=1, configured=8) == 8
  assert bench_control.in_flight_for(workers=16, configured=8) == 32


def test_per_unit_figures_are_none_when_nothing_was_measured():
  assert bench_control.per_unit_ms(0.5, 250) == 2.0
  assert bench_control.per_unit_ms(None, 10) is None
  assert bench_control.per_unit_ms(1.0, 0) is None
  assert bench_control.rate(30, 2.0) == 15.0
  assert bench_control.rate(30, 0.0) == 0.0


def test_payload_is_the_float32_parameters_and_two_int64_counts():
  # (2, 3) kernel + (4,) bias = 10 floats = 40 bytes; version, frames = 16.
  assert bench_control.payload_bytes([(2, 3), (4,)]) == 56


def test_a_sampled_counter_is_interpolated_between_its_samples():
  samples = [(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (3.0, 4.0)]
  # At 0.5: 0.5; at 2.5: 1 + (4 - 1) / 2 = 2.5; grew by 2.0 in between.
  assert bench_control.usage_between(samples, 0.5, 2.5) == 2.0
  # Outside the sampled span the ends hold.
  assert bench_control.value_at(samples, -1.0) == 0.0
  assert bench_control.value_at(samples, 9.0) == 4.0


def test_quantile_is_the_nearest_rank():
  assert bench_control.quantile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == 5.0
  assert bench_control.quantile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
  assert bench_control.quantile([], 0.9) == 0.0


def test_the_cpu_sampler_charges_a_window_timed_elsewhere():
  start = time.monotonic()
  # A counter growing 2 units per second, like a cgroup at two busy cores.
  with bench_control.CpuSampler(lambda: 2.0 * (time.monotonic() - start)) as s:
    time.sleep(0.4)
    t0 = time.monotonic()
    time.sleep(0.3)
    t1 = time.monotonic()
    time.sleep(0.2)
  assert s.between(t0, t1) == pytest.approx(2.0 * (t1 - t0), abs=0.02)


def test_the_report_prints_a_table_per_measurement_errors_and_notes():
  values = {
      'window_s': 6.0, 'network': {'kind': 'nature_cnn', 'bytes': 6748824},
      'closures': [{'workers': 4, 'servers': 'processes', 'in_flight': 8,
                    'closures_per_s': 236.2, 'chief_cpu_ms_per_closure': 2.55,
                    'worker_cpu_ms_per_closure': None},
                   {'error': 'measuring process exited (1)'}],
      'ps': [], 'publish': [], 'pulls': [], 'notes': ['in-process shares CPU'],
      'ps_skipped': 'needs root'}
  text = bench_report.table({'date': 'd', 'machine': 'm', 'control': values})
  assert '[control] 6 s per measurement; network nature_cnn, 6,748,824 bytes' in text
  assert '| 4 | processes | 8 | 236 | 2.55 | - |' in text
  assert '| error: measuring process exited (1) |' in text
  assert 'ps_skipped: needs root' in text and 'note: in-process shares CPU' in text
  assert 'ps:' not in text.splitlines()  # empty measurements print no table


@pytest.mark.cluster
def test_one_chief_schedules_and_collects_trivial_closures_on_one_worker():
  [row] = bench_control.measure_closures('pong', [], WINDOW_S, worker_counts=(1,),
                                         separate_workers=0)
  assert row['workers'] == 1 and row['servers'] == 'in-process'
  assert row['closures'] > 0 and row['closures_per_s'] > 0
  assert row['chief_cpu_ms_per_closure'] > 0


@pytest.mark.cluster
def test_a_whole_network_publishes_and_one_actor_pulls_it():
  result = bench_control.measure_publication('pong', [], WINDOW_S,
                                             puller_counts=(1,))
  assert result['network']['kind'] == 'nature_cnn'
  # Nature DQN on Pong (6 actions): 1,687,206 float32 parameters.
  assert result['network']['bytes'] == 4 * 1_687_206
  assert result['publish']['publishes'] > 0 and result['publish']['ms_per_publish'] > 0
  [row] = result['pulls']
  assert row['pullers'] == 1 and row['pulls_per_s'] > 0 and row['failed_pulls'] == 0
  assert row['bytes_per_pull'] == 4 * 1_687_206 + 16
  assert row['server_cpu_ms_per_pull'] is None or row['server_cpu_ms_per_pull'] >= 0


WHY_NOT = hosts.check_support()


@pytest.mark.skipif(WHY_NOT is not None, reason=f'no emulated hosts: {WHY_NOT}')
@pytest.mark.cluster
def test_one_ps_on_a_one_core_host_applies_and_serves_reads():
  [row] = bench_control.measure_ps('pong', [], WINDOW_S, shares=(1.0,))['rows']
  assert 'error' not in row, row.get('error')
  assert row['cpu_cores'] == 1.0
  assert row['applies_per_s'] > 0 and row['reads_per_s'] > 0
  # The ps's cgroup counted its work: CPU per apply and per read, within its share.
  assert row['ps_cpu_ms_per_apply'] > 0 and row['ps_cpu_ms_per_read'] > 0
  assert 0 < row['ps_busy_apply'] <= 1.1 and 0 < row['ps_busy_read'] <= 1.1
