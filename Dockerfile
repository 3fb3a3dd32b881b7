# rowstream's container image.
#
# Two stages: a Rust build stage, and a run stage on distroless/cc (glibc and CA certificates;
# no shell, no package manager) running as the non-root user `nonroot` (uid 65532).
# The binary is near-static: OpenSSL and zlib are built into it (`--features vendored`); only
# glibc (libc, libm, libgcc_s) is linked dynamically, and distroless/cc provides exactly that.
# Kafka SASL PLAIN / SCRAM / OAUTHBEARER work; Kerberos (GSSAPI) is left out of the image.
# The built-in OpenSSL finds the base image's CA certificates through SSL_CERT_FILE/DIR.
# (Checked on the build machine: `ldd` of this build lists libc, libm and libgcc_s only;
# stripped it is ~33 MB with the Parquet and object store crates.)
#
# Configure it with a mounted file (ROWSTREAM_CONFIG, default /etc/rowstream/rowstream.toml)
# and ROWSTREAM_<SECTION>__<KEY> environment variables, which win over the file. The state
# lives in /state (a volume) unless state.backend = "kafka". Health: `rowstream health`
# (exit 0 when /health answers 200; `--ready` for /ready), usable as an exec health check.
#
#   docker build -t rowstream .
#   docker run -v $PWD/rowstream.toml:/etc/rowstream/rowstream.toml:ro -v rs-state:/state rowstream

FROM rust:1-bookworm AS build
# perl and make build the vendored OpenSSL; cmake-free: librdkafka builds with its own configure
RUN apt-get update \
 && apt-get install -y --no-install-recommends perl make pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --no-default-features --features vendored --bin rowstream \
 && cp target/release/rowstream /rowstream \
 && strip /rowstream \
 && mkdir /state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rowstream /usr/local/bin/rowstream
COPY --from=build --chown=65532:65532 /state /state
ENV ROWSTREAM_CONFIG=/etc/rowstream/rowstream.toml \
    ROWSTREAM_STATE__DIR=/state \
    ROWSTREAM_ADMIN__LISTEN=0.0.0.0:8080 \
    ROWSTREAM_PROGRESS=log \
    ROWSTREAM_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/etc/ssl/certs
USER nonroot
VOLUME /state
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/rowstream", "health", "--ready"]
ENTRYPOINT ["/usr/local/bin/rowstream"]
CMD ["run"]
