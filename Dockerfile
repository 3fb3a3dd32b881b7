# rowstream in a container (first sketch; not exercised in CI: no Docker engine on our machines).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev libsasl2-dev libzstd-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rowstream

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 libsasl2-2 libzstd1 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/rowstream /usr/local/bin/rowstream
VOLUME /state
ENTRYPOINT ["rowstream"]
CMD ["run", "--config", "/etc/rowstream/rowstream.toml"]
