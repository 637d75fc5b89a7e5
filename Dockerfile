# syntax=docker/dockerfile:1
# The production image of agglo: one image for the web app (gunicorn), the worker and the
# migrations (see docker-compose.yml). Build: docker compose build (or docker build -t agglo .).

# 1. Front-end packages, versions pinned by package-lock.json (nothing from node stays in the image).
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# 2. Build: copy the front-end files into web/static/vendor, then install the project (no dev
#    extras) into its own virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY storage ./storage
COPY processes ./processes
COPY cli ./cli
COPY webhooks ./webhooks
COPY scheduler ./scheduler
COPY web ./web
COPY bench ./bench
COPY --from=assets /src/node_modules ./node_modules
RUN python -m web.assets \
    && python -m venv /opt/agglo \
    && /opt/agglo/bin/pip install . \
    && /opt/agglo/bin/agglo --help > /dev/null

# 3. Runtime: the virtual environment only, run by an unprivileged user.
FROM python:3.11-slim AS runtime
ENV PATH=/opt/agglo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 agglo \
    && useradd --system --uid 10001 --gid agglo --home-dir /app --no-create-home --shell /usr/sbin/nologin agglo
COPY --from=build /opt/agglo /opt/agglo
WORKDIR /app
# gunicorn reads its settings from this file (every value can be overridden by AGGLO_* variables).
COPY web/gunicorn.conf.py ./web/gunicorn.conf.py
USER agglo
EXPOSE 8000
CMD ["gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:app"]
