# One image for every role; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /app dkron && chown -R dkron /app
EXPOSE 8080
CMD ["gunicorn", "dkronweb.wsgi", "--bind", "0.0.0.0:8080", "--workers", "3"]
