# Production image: the web server and the worker share it (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /srv/sftdesk
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# Pick the torch build for your hardware here; the CPU wheel keeps the image small.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install -e '.[train]'
EXPOSE 8000
CMD ["sftdesk", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
