# tradepulse image: the locked dependencies, then the package. One image serves every process
# (`tradepulse run`, `tradepulse engine`, `tradepulse api`, `tradepulse signals`, ...).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/tradepulse PATH=/opt/tradepulse/bin:$PATH
WORKDIR /app

RUN python -m venv "$VIRTUAL_ENV" && pip install "uv==0.13.9"
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip sync --python "$VIRTUAL_ENV/bin/python" requirements.lock
COPY src ./src
RUN uv pip install --python "$VIRTUAL_ENV/bin/python" --no-deps . \
    && useradd --create-home --uid 10001 tradepulse && mkdir -p /app/var && chown tradepulse /app/var
USER tradepulse

EXPOSE 8000
CMD ["tradepulse", "run", "--no-panel"]
