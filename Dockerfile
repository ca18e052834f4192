# hearth in a container: built in Rust's Debian image, run in slim Debian as a non-root
# user. Models live in the volume at /models and API keys in the volume at /keys (or in a
# file mounted where HEARTH_KEYS_FILE points). Bound to every address, the server refuses
# to start until it has a key:
#   docker build -t hearth .
#   docker run --rm -v hearth-keys:/keys hearth keys create app
#   docker run -d -p 11434:11434 -v hearth-models:/models -v hearth-keys:/keys hearth
# Keys made or revoked later take effect on `docker kill -s HUP <container>`.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# llama.cpp builds with cmake; bindgen needs libclang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY .cargo .cargo
COPY crates crates
# A portable binary: the repository's build flags tune for the building machine's CPU,
# which a container image must not assume (x86-64-v3 is AVX2; use `generic` on arm64).
# The wrap flag keeps C++ exceptions in llama_decode from aborting the server.
ARG TARGET_CPU=x86-64-v3
ENV RUSTFLAGS="-C target-cpu=${TARGET_CPU} -C link-arg=-Wl,--wrap=llama_decode"
RUN cargo build --release --locked -p hearth \
 && install -m 0755 target/release/hearth /usr/local/bin/hearth

FROM ${RUNTIME_IMAGE}
# libgomp: llama.cpp's threads; curl: the health check; ca-certificates: pulls over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-log-init --create-home --home-dir /home/hearth hearth \
 && mkdir -p /models /keys \
 && chown hearth:hearth /models /keys
COPY --from=build /usr/local/bin/hearth /usr/local/bin/hearth
ENV HEARTH_HOST=0.0.0.0:11434 \
    HEARTH_MODELS=/models \
    HEARTH_KEYS_FILE=/keys/keys.json
VOLUME ["/models", "/keys"]
# Numeric, so that orchestrators can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/hearth
EXPOSE 11434
# Asks the port HEARTH_HOST names, whatever it was set to.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${HEARTH_HOST##*:}/api/version\""]
ENTRYPOINT ["hearth"]
CMD ["serve"]
