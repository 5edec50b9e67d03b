"""The scaling model: unit costs from the bench sections, its limits by hand."""

import pytest

from gorila_tf.lab import scaling_model


def costs(**kwargs):
  base = dict(bundle_updates_per_s=2.5, bundle_cores=0.15, frames_per_update=16.0,
              ps_ms_per_apply=11.0, ps_ms_per_read=3.0, chief_ms_per_closure=2.0,
              network_bytes=6.75e6, publish_ms=8.7)
  base.update(kwargs)
  return scaling_model.UnitCosts(**base)


def test_per_update_costs_by_hand():
  c = costs()
  # apply 11 + replica read 3 + target read 3/4 per closure of 4 = 14.75 ms.
  assert c.ps_ms_per_update == pytest.approx(14.75)
  assert c.chief_ms_per_update == pytest.approx(0.5)  # 2 ms per closure of 4
  # replica + gradient + a quarter target = 2.25 networks through the ps links.
  assert c.ps_bytes_per_update == pytest.approx(2.25 * 6.75e6)


def test_one_machine_is_bundle_bound_until_the_cores_run_out():
  c = costs()
  # 8 bundles: 20 updates/s wanted; (2 - 1.2) cores / 15.25 ms = 52.5 allowed.
  eight = scaling_model.one_machine(c, 8, machine_cores=2)
  assert eight['updates_per_s'] == pytest.approx(20.0)
  assert eight['machine'] == pytest.approx(800 / 15.25)
  # 13 bundles leave 0.05 cores: 3.3 updates/s, far below 13 x 2.5.
  assert scaling_model.one_machine(c, 13, 2)['updates_per_s'] == pytest.approx(50 / 15.25)


def test_the_paper_layout_names_its_first_limit():
  c = costs()
  paper = scaling_model.cluster(c, bundles=100, ps=31, node_cores=2.0, link_gbit=10.0)
  # A 2-core bundle: 2.5 x 2 / 0.15 = 33.3 updates/s, 3,333 for 100 of them;
  # the chief's closures allow 1000 / 0.5 = 2,000: the first limit.
  assert paper['bundles'] == pytest.approx(100 * 2.5 * 2 / 0.15)
  assert paper['first_limit'] == 'chief CPU (closures)'
  assert paper['updates_per_s'] == pytest.approx(2000.0)
  # 16 steps per closure moves it: the next limit takes over.
  moved = scaling_model.cluster(costs(steps_per_closure=16), 100, 31, 2.0, 10.0)
  assert moved['first_limit'] != 'chief CPU (closures)'


def test_check_reports_each_points_relative_error():
  rows = scaling_model.check(costs(), [
      {'bundles': 1, 'ps': 2, 'updates_per_s': 2.5},
      {'bundles': 2, 'ps': 2, 'updates_per_s': 4.0},
      {'bundles': 4, 'ps': 2, 'error': 'no learning'}], machine_cores=2)
  assert [r['bundles'] for r in rows] == [1, 2]
  assert rows[0]['error'] == pytest.approx(0.0)
  assert rows[1]['error'] == pytest.approx(5.0 / 4.0 - 1.0)


def test_a_tfjob_split_is_the_best_of_every_split_and_names_its_limit():
  c = costs()
  best = scaling_model.best_tfjob(c, nodes=16, node_cores=8.0, link_gbit=10.0)
  assert best['num_bundles'] + best['num_ps'] == 15  # one node is the chief's
  every = [scaling_model.cluster(c, 15 - ps, ps, 8.0, 10.0)['updates_per_s']
           for ps in range(1, 15)]
  assert best['updates_per_s'] == pytest.approx(max(every))
  assert best['first_limit'] in best  # a limit the model computed
  # Fast nodes fill the links before the cores: more than a third go to ps.
  assert best['num_ps'] > 15 / 3
