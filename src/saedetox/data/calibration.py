"""Neutral calibration sentences written for saedetox (no third-party text).

Used to measure the typical residual norm at a hook (strength tiers), to estimate SAE-Lens'
``expected_average_only_in`` factor, and for the SAE preflight (explained variance, CE change).
"""

from __future__ import annotations

CALIBRATION_TEXTS: tuple[str, ...] = (
    "The library opens at nine in the morning and closes at six in the evening.",
    "She walked to the station, bought a ticket and waited for the next train to the city.",
    "Our team spent the afternoon reviewing the budget for the coming year.",
    "The recipe calls for two cups of flour, a pinch of salt and three eggs.",
    "After the rain stopped, the children went outside to play in the park.",
    "He has been working as a nurse at the local hospital for almost ten years.",
    "The committee will meet again next Tuesday to discuss the new proposal.",
    "Prices for fresh vegetables rose slightly during the winter months.",
    "I think the movie was a little too long, but the music was wonderful.",
    "The river runs through the valley and into a small lake near the village.",
    "Please send me the report by Friday so that I can read it over the weekend.",
    "The old bridge was closed for repairs, so traffic moved slowly all day.",
    "My grandmother grew tomatoes, beans and peppers in her garden every summer.",
    "The company announced that it would open a new office in the spring.",
    "They talked about their favourite books while the coffee was getting cold.",
    "A small boat drifted past the harbour as the sun went down.",
    "The teacher asked the students to write a short essay about their town.",
    "We should leave early tomorrow if we want to avoid the heavy traffic.",
    "The museum has a large collection of paintings from the last century.",
    "He fixed the broken chair with a few nails and some glue.",
    "The weather report says it will be sunny and warm for the rest of the week.",
    "Thank you for your letter; I was glad to hear that you are doing well.",
    "The new policy was explained at the meeting, and most people agreed with it.",
    "She plays the piano every evening after dinner.",
    "The farmers hope for more rain before the harvest begins.",
    "It took them three hours to climb to the top of the hill.",
    "The shop on the corner sells bread, milk and newspapers.",
    "In the story, a young girl finds a map that leads to a hidden garden.",
    "The doctor told him to rest for a few days and drink plenty of water.",
    "Several new houses were built along the road last year.",
    "I am not sure what time the game starts, but I will check the schedule.",
    "The students cleaned the classroom before the holidays.",
)
