"""The chaos runner: randomized programs of operations and faults against a dispatcher, judged by a model.

Modules: ``stateful`` (operations and faults), ``checker`` (the judge), ``history`` (replayable runs),
``soak`` (long runs), ``cli`` (``python -m chaos``). The fault injectors themselves live in ``faults``.
"""
