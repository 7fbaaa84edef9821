# One image for every role; docker-compose.yml picks the command. It runs as its own
# unprivileged user `dkron` (uid/gid 10001): the code is root's and read-only to it, and only
# the data directory (DKRON_DATA_DIR, /app/var: the embedded mode's SQLite database and
# secret key, static files, the `files` processor's logs) is writable, owner-only (0700).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DKRON_DATA_DIR=/app/var
WORKDIR /app
RUN groupadd --system --gid 10001 dkron \
    && useradd --system --uid 10001 --gid dkron --home-dir /app/var --no-create-home \
       --shell /usr/sbin/nologin dkron
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN install -d -o dkron -g dkron -m 0700 /app/var
USER dkron
EXPOSE 8080
CMD ["gunicorn", "dkronweb.wsgi", "--bind", "0.0.0.0:8080", "--workers", "3"]
