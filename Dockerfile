# syntax=docker/dockerfile:1
# A Lambda container image: our `bootstrap` as the runtime of AWS's provided:al2023 base, with the
# example handlers in /var/task and the echo handler selected.
#
#   docker build -t dd-bootstrap-echo .                          # x86_64
#   docker build --platform linux/arm64 -t dd-bootstrap-echo .   # arm64 (Graviton)
#   docker run --rm -p 9000:8080 dd-bootstrap-echo               # AWS's emulator (RIE) in the base
#   curl -d '{"hello":"world"}' localhost:9000/2015-03-31/functions/function/invocations
#
# The build stage runs on the builder's own platform and cross-compiles with cargo-zigbuild for
# TARGETARCH (set by BuildKit from --platform), so an arm64 image needs no emulation to build,
# and both architectures get the same glibc 2.26 floor as dist/function.zip.
#
# Pins: the Rust image is the workspace's toolchain (1.95.0) and the base a dated AL2023 tag, each
# with the digest public Dockerfiles pin it by (not checked against the registry from the
# machine this was written on: there is no Docker there). Check or refresh one with
#   docker buildx imagetools inspect IMAGE:TAG
# and override it without editing this file: --build-arg RUST_IMAGE=... / LAMBDA_BASE_IMAGE=...
# cargo-zigbuild and ziglang match scripts/peer-requirements.txt (scripts/lint-dockerfile.sh
# checks that).
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG LAMBDA_BASE_IMAGE=public.ecr.aws/lambda/provided:al2023.2026.02.27.21@sha256:9ee3f032d4063febdf42a2a1f15149ce8358130753e48fcaf86eae731fab38ff

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
# The glibc floor of the build: Amazon Linux 2's, so the same binary serves provided.al2 too.
ARG GLIBC_FLOOR=2.26

# Debian replaces exact package versions with its security updates, so python3-venv is not
# pinned: the image digest fixes the release it comes from.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/zigbuild \
 && /opt/zigbuild/bin/pip install --no-cache-dir cargo-zigbuild==0.24.1 ziglang==0.17.1
# cargo-zigbuild finds zig through the venv's python (`python3 -m ziglang`).
ENV PATH=/opt/zigbuild/bin:$PATH

# Docker's architecture names to Rust's.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu ;; \
      arm64) echo aarch64-unknown-linux-gnu ;; \
      *) echo "no Lambda architecture for TARGETARCH=$TARGETARCH (use linux/amd64 or linux/arm64)" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"

WORKDIR /src
COPY . .
# The caches keep crates and compiled dependencies between builds; the artifacts are copied
# out of the cached target folder in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    rust_target="$(cat /rust-target)" \
 && cargo zigbuild --release --locked --target "$rust_target.$GLIBC_FLOOR" \
      -p bootstrap --bin bootstrap -p handlers-example --lib \
 && mkdir /out \
 && cp "target/$rust_target/release/bootstrap" "target/$rust_target/release/libhandlers_example.so" /out/

FROM ${LAMBDA_BASE_IMAGE}
# The base's entrypoint runs /var/runtime/bootstrap (behind AWS's emulator when no Runtime API
# is given) with _HANDLER set from CMD; the handler library is looked up in LAMBDA_TASK_ROOT.
COPY --from=build /out/bootstrap /var/runtime/bootstrap
COPY --from=build /out/libhandlers_example.so /var/task/
ENV DD_LAMBDA_HANDLER=libhandlers_example.so:echo
CMD ["libhandlers_example.so:echo"]
