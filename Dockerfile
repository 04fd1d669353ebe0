# The Varpulis image: `varpulis` with the Kafka and MQTT connectors on an empty base (FROM
# scratch) holding only the binary, its shared libraries, CA certificates and a non-root user.
#
#   docker build -t varpulis .
#   docker run -p 8080:8080 -e VARPULIS_ADMIN_KEY=change-me varpulis
#
# scripts/image builds the same image without a container daemon or registry (buildah, FROM
# scratch, the root filesystem from scripts/image-rootfs).

# --- build -----------------------------------------------------------------------------------
FROM rust:1.88-bookworm AS build
# librdkafka (the kafka feature) is built from source: cmake, libcurl and OpenSSL headers.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       cmake libcurl4-openssl-dev libssl-dev pkg-config ca-certificates binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features kafka \
    && bash scripts/image-rootfs target/release/varpulis /rootfs

# --- runtime ---------------------------------------------------------------------------------
FROM scratch
COPY --from=build /rootfs/ /
# The state directory belongs to the non-root user (a second COPY: --chown covers what it copies).
COPY --from=build --chown=10001:10001 /rootfs/var/lib/ /var/lib/
USER 10001:10001
ENV VARPULIS_LISTEN=0.0.0.0:8080 \
    VARPULIS_STATE_DIR=/var/lib/varpulis \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME /var/lib/varpulis
EXPOSE 8080
# No shell or curl in the image: the binary asks its own /healthz (VARPULIS_LISTEN).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/varpulis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/varpulis"]
CMD ["server"]
