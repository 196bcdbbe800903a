# slm in a container: `slm serve` (OpenAI-compatible API and web chat) on port 8080.
# Not built in CI (no Docker there): the build stage runs scripts/build.sh, the script the
# README's commands use, and tests/unit/test_dockerfile.cpp checks the package lists below
# against scripts/setup.sh and the libraries the built slm links. See docs/DEPLOY.md.
#
#   docker build -t slm .
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" slm /models/model.gguf

# ---- build: the build packages of scripts/setup.sh (no test tools), then scripts/build.sh --
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev \
      libpcre2-dev libutf8proc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# SLM_NATIVE=OFF: the image runs on any x86-64 with AVX2/FMA/F16C, not only on the builder's
# CPU (the kernels still pick their SIMD path at run time). No tests in the image.
RUN scripts/build.sh -DSLM_NATIVE=OFF -DSLM_BUILD_TESTS=OFF

# ---- runtime: slim Debian with only the shared libraries slm links ----------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libstdc++6 libpcre2-8-0 libutf8proc2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin slm
COPY --from=build /src/build/slm /usr/local/bin/slm
USER slm
EXPOSE 8080
# bash's /dev/tcp speaks enough HTTP for GET /health, so the image needs no curl (fewer
# packages, smaller attack surface); the check passes only on a "200" status line.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["slm", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["/models/model.gguf"]
