# vsslrt image.
#
# GPU (default): NVIDIA's TensorRT container, whose TensorRT major must match the `trt` extra (11.x);
# the build checks it and fails with a clear message otherwise.
#   docker build -t vsslrt:gpu .
#   docker run --gpus all --rm -v "$PWD/runs:/work/runs" vsslrt:gpu bench --out /work/runs/demo
#
# CPU: a slim Python base and ONNX Runtime's CPU build.
#   docker build -t vsslrt:cpu --build-arg BASE_IMAGE=python:3.11.11-slim-bookworm --build-arg VARIANT=cpu .
#   docker run --rm vsslrt:cpu bench
ARG BASE_IMAGE=nvcr.io/nvidia/tensorrt:26.07-py3
FROM ${BASE_IMAGE}

ARG VARIANT=gpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VSSLRT_CACHE=/var/cache/vsslrt

WORKDIR /opt/vsslrt
# Dependencies first (better layer caching), then the source.
COPY pyproject.toml README.md ./
COPY vsslrt ./vsslrt
COPY export ./export
COPY engine ./engine
COPY eval ./eval

# libsndfile is bundled in soundfile's wheels; nothing else is needed from the OS.
RUN set -eux; \
    python3 -m pip install --upgrade pip; \
    if [ "$VARIANT" = "gpu" ]; then \
        python3 -c "import tensorrt, sys; v = tensorrt.__version__; sys.exit(0 if v.startswith('11.') else f'base image ships TensorRT {v}; the trt extra needs 11.x: pick a BASE_IMAGE tag with TensorRT 11')"; \
        python3 -m pip install ".[gpu]"; \
    else \
        python3 -m pip install ".[cpu]"; \
    fi; \
    vsslrt --version

ENTRYPOINT ["vsslrt"]
CMD ["--help"]
