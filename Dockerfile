# syntax=docker/dockerfile:1
# The h200 binary (backend, edge, workers on CPU, administration) in a minimal image.
#   docker build -t h200 .
#   docker run --read-only -p 8081:8081 -v h200-data:/data h200 backend --addr 0.0.0.0:8081
# The final image holds the binary and the C runtime only: no shell, no package manager, and a
# non-root user. Every command of the binary is the entrypoint's argument; the default is the
# backend. The CUDA build for GPU workers is Dockerfile.cuda.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p h200 \
    && install -D -m 0755 target/release/h200 /out/h200 \
    && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/h200 /usr/local/bin/h200
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV H200_DATA_DIR=/data \
    H200_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080 8081
# Probes the backend's liveness by default; compose and Kubernetes probe each service's own port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/h200", "probe", "http://127.0.0.1:8081/health"]
ENTRYPOINT ["/usr/local/bin/h200"]
CMD ["backend", "--addr", "0.0.0.0:8081"]
