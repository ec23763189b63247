# Signet container image. Docker is not available on the development machine, so this file
# (and docker-compose.yml) is not exercised by the test suite: treat it as a starting point.

# ---- build ----------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The bundled SQLite and ring are compiled with the image's C compiler; no OpenSSL needed.
RUN cargo build --release --locked -p signet \
 && install -m 0755 target/release/signet /usr/local/bin/signet

# ---- runtime --------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: for TLS connections to PostgreSQL (sslmode=require / verify-full).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system signet \
 && useradd --system --gid signet --home-dir /var/lib/signet --shell /usr/sbin/nologin signet \
 && install -d -m 0700 -o signet -g signet /var/lib/signet
COPY --from=builder /usr/local/bin/signet /usr/local/bin/signet
USER signet
WORKDIR /var/lib/signet
# Commands default to --dir signet-data, that is /var/lib/signet/signet-data: CA
# certificates and keys, signet.toml, admin.token, provisioners/, and the SQLite database
# unless SIGNET_DATABASE_URL points at PostgreSQL. Keep it on a persistent volume.
VOLUME ["/var/lib/signet"]
# `signet serve --listen 0.0.0.0:8443` (see docker-compose.yml).
EXPOSE 8443
ENTRYPOINT ["signet"]
CMD ["--help"]
