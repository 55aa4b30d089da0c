"""Whisper's units of time, derived once from its sample rate and hop length.

Audio becomes log-mel frames every ``HOP_LENGTH`` samples; the encoder halves the frames
into positions (its second convolution has stride 2), and a timestamp token counts one
position. So 16 kHz audio makes 100 frames, 50 encoder positions and 50 timestamp steps a
second, and a 30 s window is 3000 frames.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # samples per mel frame
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH

WINDOW_SECONDS = 30  # the encoder input Whisper was trained on
WINDOW_FRAMES = WINDOW_SECONDS * FRAMES_PER_SECOND

FRAMES_PER_POSITION = 2  # the encoder's stride
POSITIONS_PER_SECOND = FRAMES_PER_SECOND // FRAMES_PER_POSITION

# Timestamp tokens step by one encoder position.
FRAMES_PER_TIMESTAMP_TOKEN = FRAMES_PER_POSITION
SECONDS_PER_TIMESTAMP_TOKEN = 1 / POSITIONS_PER_SECOND
