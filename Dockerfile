# One image for every service; compose.yaml picks the service with the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml requirements.lock README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --system --uid 10001 howlerhire
USER howlerhire
CMD ["python", "-m", "services.gateway"]
