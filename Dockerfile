# One image for every role: docker run IMAGE web | worker | cron | migrate
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN useradd --system --home /app fanout && mkdir -p /app/instance && chown fanout /app/instance
USER fanout
ENV BIND_HOST=0.0.0.0 PORT=8000
EXPOSE 8000
ENTRYPOINT ["python", "-m", "webapp.entrypoint"]
CMD ["web"]
