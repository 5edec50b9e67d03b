"""What a run wrote, read back without TensorFlow: its progress records, the
tag names its summaries use, and the GIFs of played episodes.

Tools and benches import this instead of `metrics` (which imports TensorFlow
and Reverb, ~5 s of start-up), so a bad flag is refused at once.
"""

from __future__ import annotations

import collections
import io
import json
import os

import numpy as np


def read_progress(run_dir: str, progress_file: str = 'progress.jsonl') -> list[dict]:
  """The JSON lines written by `SummaryWriter.scalars` (for tests and tools)."""
  path = os.path.join(run_dir, progress_file)
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except ValueError:
        # Blank, or cut short by a full disk or a kill mid-write (the next
        # record then shares its line): that line's records are skipped.
        pass
  return records


# Ordered tag names, so every writer uses the same spelling.
TAGS = collections.OrderedDict(
    episodic_return='charts/episodic_return',
    episode_length='charts/episode_length',
    frames_per_second='charts/frames_per_second',
    updates_per_second='learners/updates_per_second',
    td_loss='losses/td_loss',
    mean_q='learners/mean_q',
    gradient_staleness='learners/gradient_staleness',
    applied='learners/applied_gradients',
    discarded_stale='learners/discarded_stale_gradients',
    discarded_outlier='learners/discarded_outlier_gradients',
    epsilon='actors/epsilon',
    replay_size='replay/size',
    param_staleness='actors/param_staleness',
    frames='charts/frames',
    updates='learners/updates',
    eval_return='eval/episodic_return',
)


def gif_bytes(pictures: list, fps: int = 30, scale: int = 2) -> bytes:
  """An animated GIF of the pictures (gray or RGB arrays), each scaled up."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = [Image.fromarray(np.asarray(p, np.uint8)).resize(
      (p.shape[1] * scale, p.shape[0] * scale), Image.NEAREST) for p in pictures]
  buffer = io.BytesIO()
  images[0].save(buffer, format='GIF', save_all=True, append_images=images[1:],
                 duration=max(1, round(1000 / fps)), loop=0)
  return buffer.getvalue()
