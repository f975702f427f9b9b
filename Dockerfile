# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are built in `build`, the runtime image carries only the venv and code.
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
COPY app ./app
COPY models ./models
COPY scoring ./scoring
COPY migrations ./migrations
RUN /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 clustermatch
WORKDIR /srv
COPY --from=build /opt/venv /opt/venv
COPY --chown=clustermatch:clustermatch alembic.ini ./
COPY --chown=clustermatch:clustermatch app ./app
COPY --chown=clustermatch:clustermatch models ./models
COPY --chown=clustermatch:clustermatch scoring ./scoring
COPY --chown=clustermatch:clustermatch migrations ./migrations
COPY --chown=clustermatch:clustermatch data ./data
COPY --chown=clustermatch:clustermatch docker-entrypoint.sh ./
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000 \
    MODEL_DIR=/srv/var/models DATABASE_URL=sqlite:////srv/var/clustermatch.db
RUN mkdir -p /srv/var/models && chown -R clustermatch:clustermatch /srv/var
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/healthz\", timeout=2)"]
ENTRYPOINT ["./docker-entrypoint.sh"]
# `prepare` (migrate, load data, train the first classifier) runs as its own step: `docker run IMAGE prepare`.
CMD ["serve"]
