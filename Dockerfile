# The broker_jobs image: one image, every process (worker, scheduler, web, release).
#   docker build -t broker-jobs .
#   docker run --rm broker-jobs broker-jobs --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so a code-only change rebuilds one small layer: exactly the
# versions and files of requirements.lock (hashes checked), then the package without
# resolving anything again.
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY broker_jobs ./broker_jobs
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf /app/broker_jobs /app/build

# Config files, examples and the Procfile (see .dockerignore for what stays out).
COPY . .
RUN rm -rf /app/broker_jobs \
 && mkdir -p /app/data /tmp/broker-jobs-metrics \
 && chown -R app:app /app/data /tmp/broker-jobs-metrics

# In a container: listen on every interface, keep state under /app/data.
ENV API_HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0 \
    METRICS_DIR=/tmp/broker-jobs-metrics \
    DATABASE_URL=sqlite:////app/data/broker_jobs.sqlite3 \
    JOBS_CONFIG=/app/config/jobs.yaml

USER 10001:10001
EXPOSE 8000 9191
CMD ["broker-jobs", "serve"]
