"""What the shared test speech says: scripts that tests and benchmarks speak and score.

Kept out of the test modules so that a test or benchmark never imports another test module.
"""

from __future__ import annotations

# Sixteen plain sentences, read as one story of a few minutes with pauses in between.
STORY = [
    "Once upon a time there was a small village at the edge of a great forest.",
    "Every morning the baker opened his shop and sold fresh bread to the neighbours.",
    "The children walked to school along the river and counted the boats.",
    "In the afternoon the farmers brought vegetables to the market square.",
    "One day a stranger arrived with a wooden box full of old maps.",
    "He asked the mayor for a room and a hot meal for the night.",
    "The next morning he unfolded the maps on the table in the inn.",
    "They showed a path through the mountains that nobody had ever seen.",
    "A young girl named Anna offered to guide him to the first valley.",
    "They packed food, warm clothes and a lantern for the journey.",
    "After three days they reached a lake as blue as the summer sky.",
    "On the far shore stood a tower made of grey stone and glass.",
    "Inside the tower they found a library with thousands of books.",
    "Anna read the stories aloud while the stranger drew a new map.",
    "When they came home the whole village gathered to hear the tale.",
    "Since that day the library has been open to everyone who visits.",
]
# Short sentences; the first is what the shared ``clip`` fixture (tests/conftest.py) says.
COFFEE_ORDER = "I would like a large coffee with milk and no sugar."
MEETING_MOVED = "The meeting has been moved to Thursday afternoon."
LONG_SILENCE = 25.0  # longer than the model's window: nothing may be invented here

SPANISH = "Buenos días. Hoy hace muy buen tiempo y vamos a caminar por el parque."
