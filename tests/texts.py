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
# Samuel Beckett's line, as a person reads it in moonshine-cpp's test-data/beckett.wav: real
# speech that ships with the bundled Moonshine model.
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
COFFEE_ORDER = "I would like a large coffee with milk and no sugar."
MEETING_MOVED = "The meeting has been moved to Thursday afternoon."
LONG_SILENCE = 25.0  # longer than the model's window: nothing may be invented here

SPANISH = "Buenos días. Hoy hace muy buen tiempo y vamos a caminar por el parque."

# Plain sentences per language (Whisper's code), a few seconds each, for the accuracy
# comparisons against faster-whisper; CJK ones are scored by characters.
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The library opens at nine and closes early on Sundays.",
        "Please send me the report before the end of the week.",
        "We took the last train home and arrived after midnight.",
        "My sister planted tomatoes and beans in the garden.",
    ),
    "es": (
        "El tren sale de la estación central cada hora.",
        "Mi color favorito es el verde y me gusta leer por la noche.",
        "Mañana vamos a visitar a mis abuelos en el pueblo.",
        "La cocina del restaurante cierra a las once de la noche.",
    ),
    "de": (
        "Der Zug fährt jeden Morgen um sieben Uhr ab.",
        "Meine Schwester arbeitet in einem großen Krankenhaus.",
        "Wir haben am Wochenende einen langen Spaziergang gemacht.",
        "Das Museum ist montags geschlossen.",
    ),
    "fr": (
        "Le train part de la gare centrale toutes les heures.",
        "Ma sœur travaille dans une grande bibliothèque.",
        "Nous avons mangé du poisson au restaurant hier soir.",
        "Il fait froid ce matin, prends ton manteau.",
    ),
    "it": (
        "Il treno parte dalla stazione centrale ogni ora.",
        "Mia sorella lavora in una grande biblioteca.",
        "Domani andiamo al mare con i nostri amici.",
        "La cucina del ristorante chiude alle undici.",
    ),
    "pt": (
        "O trem sai da estação central a cada hora.",
        "Minha irmã trabalha em uma grande biblioteca.",
        "Amanhã vamos visitar nossos avós no interior.",
        "O restaurante fecha às onze horas da noite.",
    ),
    "ru": (
        "Поезд отправляется с центрального вокзала каждый час.",
        "Моя сестра работает в большой библиотеке.",
        "Завтра мы поедем к бабушке в деревню.",
        "Сегодня утром было очень холодно.",
    ),
    "ja": (
        "きょうは とても いい てんき です。",
        "わたしは まいあさ コーヒーを のみます。",
        "えきまで あるいて じゅっぷん です。",
        "あしたは ともだちと えいがを みます。",
    ),
    "zh": (
        "今天天气很好，我们去公园散步吧。",
        "我每天早上喝一杯咖啡。",
        "火车每个小时从中央车站出发。",
        "我的妹妹在一家大图书馆工作。",
    ),
    "ko": (
        "오늘은 날씨가 아주 좋습니다.",
        "저는 매일 아침 커피를 마십니다.",
        "기차는 매시간 중앙역에서 출발합니다.",
        "내일 친구와 영화를 볼 거예요.",
    ),
}
# The espeak-ng voice that reads each language of SENTENCES.
VOICES = {"en": "en-us", "es": "es", "de": "de", "fr": "fr", "it": "it", "pt": "pt-br",
          "ru": "ru", "ja": "ja", "zh": "cmn", "ko": "ko"}  # fmt: skip
