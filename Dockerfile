# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build --target operator   -t model-registry-operator:latest .
#   docker build --target model-sync -t model-sync:latest .
# The toolchain CI builds and tests with; override to taste.
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p model-registry-operator -p model-sync \
    && mkdir -p /out \
    && cp target/release/model-registry-operator target/release/model-sync /out/

# Minimal runtime: glibc, libgcc, CA certificates, non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime-base
USER 65532:65532

FROM runtime-base AS model-sync
COPY --from=builder /out/model-sync /model-sync
USER 65532:65532
ENTRYPOINT ["/model-sync"]

FROM runtime-base AS operator
COPY --from=builder /out/model-registry-operator /model-registry-operator
USER 65532:65532
ENTRYPOINT ["/model-registry-operator"]
CMD ["run"]
