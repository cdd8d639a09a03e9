"""Learning: the networks (``models``), the trainer on device-resident uint8 tensors (``train``), the
model plug-ins the experiment runner trains by key (``learners``), and the airbench comparison
(``trainer_benchmark``).
"""
