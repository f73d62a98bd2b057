# agentwatch: the stream worker, the revocation consumer, the simulator and the CLI.
# Settings come from AGENTWATCH_* environment variables (monitor/settings.py).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY detectors detectors
COPY monitor monitor
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/agentwatch agentwatch \
    && mkdir -p /var/lib/agentwatch /keys \
    && chown agentwatch:agentwatch /var/lib/agentwatch /keys
COPY --from=build /install /usr/local
COPY deploy/init_keys.py /app/deploy/init_keys.py
USER agentwatch
WORKDIR /var/lib/agentwatch
ENV PYTHONUNBUFFERED=1 \
    AGENTWATCH_DATADIR=/var/lib/agentwatch \
    AGENTWATCH_WEB_HOST=0.0.0.0
# Each worker replica gets its own volume: session checkpoints state and the sink's disk spool.
VOLUME ["/var/lib/agentwatch"]
EXPOSE 6066
CMD ["agentwatch", "worker"]
