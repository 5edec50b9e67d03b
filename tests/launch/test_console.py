"""What the launcher's console shows: every task's lines but known noise,
which is counted there and kept in the task's log. (A real Pong cluster's
console and logs: tests/launch/test_e2e.py, on its shared Pong run.)"""

from gorila_tf.launch import noise

REVERB_WARNING = ('[reverb/cc/trajectory_writer.cc:655] The number of pending '
                  'items is alarmingly high, did you forget to call Flush? 3 '
                  'items are waiting to be sent and 61 items have been sent')
CUDA_ERROR = ('2026-11-25 16:40:26.702050: E external/local_xla/xla/stream_'
              'executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory')
STARTING_CHIEF = ('I1206 06:28:05.407653 139967086954176 broadcast.py:149] parameter '
                  'pull from 127.0.0.1:50430 failed: ServerInfo call did not '
                  'complete within provided timeout of 1s (the chief is still '
                  'starting)')
REPLAY_LOADING = (
    '[reverb/cc/platform/tfrecord_checkpointer.cc:447] Still reading compressed '
    'trajectory data. 101 records have been read so far.',
    '[reverb/cc/platform/tfrecord_checkpointer.cc:286] Loading checkpoint from '
    'runs/x/replay/bundle_0/2026-12-06T14:00:44.39553383+00:00',
    '[reverb/cc/platform/tfrecord_checkpointer.cc:457] Completed reading '
    "compressed trajectory data. We'll now start assembling the checkpointed tables.",
    '[reverb/cc/platform/tfrecord_checkpointer.cc:540] Successfully loaded 1 '
    'tables from runs/x/replay/bundle_0/2026-12-06T14:00:44.39553383+00:00')
REPLAY_LOADED = ('[reverb/cc/platform/tfrecord_checkpointer.cc:534] Table replay '
                 'and 50000 items have been successfully loaded from checkpoint '
                 'at path runs/x/replay/bundle_0/2026-12-06T14:00:44.39553383+00:00.')
CHIEF_LINE = ('I1125 16:41:55.953460 139711876627328 chief.py:297] frames 66112 '
              'updates 1259 return - loss 0.0112 fps 369 ups 24.6')


class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_known_noise_is_left_out_and_everything_else_is_shown():
  console = noise.ConsoleFilter('worker0', 'runs/x/logs/worker0.log')
  assert not console.shows(REVERB_WARNING)
  assert not console.shows(CUDA_ERROR)
  assert console.shows(CHIEF_LINE)
  assert console.shows('W1125 broadcast.py:119] parameter pull failed')
  assert console.shows('Traceback (most recent call last):')
  # A start-up race (retried) is left out; the same failure later is shown.
  assert not console.shows(STARTING_CHIEF)
  assert console.left_out == 3


def test_a_resumed_replays_loading_is_one_line_per_bundle():
  # Seen on a resumed Pong run (2026-12-06): ~450 progress lines per bundle.
  console = noise.ConsoleFilter('worker0', 'runs/x/logs/worker0.log')
  assert not any(console.shows(line) for line in REPLAY_LOADING)
  assert console.shows(REPLAY_LOADED)


def test_the_summary_comes_every_few_minutes_with_counts_and_where_they_are():
  clock = FakeClock()
  console = noise.ConsoleFilter('worker0', 'runs/x/logs/worker0.log',
                                every_s=300, clock=clock)
  for _ in range(1234):
    console.shows(REVERB_WARNING)
  console.shows(CUDA_ERROR)
  clock.now = 299
  assert console.summary() is None  # not due yet
  clock.now = 300
  assert console.summary() == (
      '[launcher] worker0: 1,234 Reverb writer warnings, 1 TensorFlow '
      'CUDA-plugin errors kept in runs/x/logs/worker0.log')
  assert console.summary(force=True) is None  # nothing left out since


def test_every_known_noise_pattern_says_why_it_is_noise():
  for n in noise.KNOWN_NOISE:
    assert n.name and len(n.why) > 20
    assert n.name.endswith('s')  # a plural, for "1,234 <name>"
