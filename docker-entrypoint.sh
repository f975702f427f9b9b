#!/bin/sh
# Start-up script for the container and for plain hosts alike:
#   ./docker-entrypoint.sh prepare   migrate, load reference data, train the first classifier if none
#   ./docker-entrypoint.sh serve     serve (WORKERS uvicorn workers, default 2)
#   ./docker-entrypoint.sh all       prepare, then serve
set -eu
PYTHON="${PYTHON:-python}"
case "${1:-serve}" in
  prepare) exec "$PYTHON" -m app.cli prepare ;;
  serve) exec "$PYTHON" -m app.cli serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WORKERS:-2}" ;;
  all) "$PYTHON" -m app.cli prepare && exec "$PYTHON" -m app.cli serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WORKERS:-2}" ;;
  *) exec "$@" ;;
esac
