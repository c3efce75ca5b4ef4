"""The builder behind ``POST /build`` (the classic API the docker CLI without BuildKit and
docker-py use), building what BuildKit builds: multi-stage Dockerfiles (independent stages at
the same time, only what the target needs), today's Dockerfile syntax, its cache.

Modules: :mod:`.parse` (Dockerfile → stages, all checks before any step), :mod:`.lint`
(``# check=``), :mod:`.shell` (word processing), :mod:`.graph` (stage dependencies and the
scheduler), :mod:`.build` (one build), :mod:`.stage` (one stage), :mod:`.steps` (the
instructions), :mod:`.mounts` (``RUN --mount``), :mod:`.cache` (step cache, ``cachefrom``,
prune), :mod:`.context` (context tar, ``.dockerignore``, remote contexts), :mod:`.remote`
(http and git fetches), :mod:`.commit` (step images), :mod:`.output` (the stream),
:mod:`.options` (the request's options).
"""
