"""The grid: what hpogrid sends to PanDA/iDDS/Rucio and how it reads their answers.

- ``taskparams``: pure builders of the HPO task (phpo's) and the ``run`` task (prun's).
- ``auth``: the credential panda-client would use, checked before anything is sent.
- ``panda``, ``idds``, ``rucio``: client-library calls whose failures become ``GridError``.
- ``monitor``: the user's grid tasks for ``tasks show/kill/retry``.
- ``sandbox``: the project folder as the job sandbox; ``job``: what a ``run`` job executes.

Modules are imported on use: panda-client reads its server URLs from the environment at import.
"""

__all__ = ["taskparams", "auth", "panda", "idds", "rucio", "monitor", "sandbox", "job"]
