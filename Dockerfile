# Signet container image: the CA (`signet serve`), the standalone responder, and the workload
# tools (`signet bootstrap`, `signet renew`) in one small image running as a non-root user.
# Docker is not available on the development machine, so this file (and docker-compose.yml
# and deploy/kubernetes/) is checked by crates/signet/tests/deploy.rs for consistency, but not
# built by the test suite.

# ---- build ----------------------------------------------------------------------------
# The same Rust release as rust-toolchain.toml (which rustup in this image would otherwise
# download on the first cargo call).
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
COPY . .
# The bundled SQLite and ring are compiled with the image's C compiler; no OpenSSL needed.
RUN cargo build --release --locked -p signet \
 && install -m 0755 target/release/signet /usr/local/bin/signet

# ---- runtime --------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: for TLS connections to PostgreSQL (sslmode=require / verify-full).
# The fixed UID/GID 10001 is the runAsUser/fsGroup of deploy/kubernetes/*.yaml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 signet \
 && useradd --system --uid 10001 --gid signet --home-dir /var/lib/signet \
      --shell /usr/sbin/nologin signet \
 && install -d -m 0700 -o signet -g signet /var/lib/signet
COPY --from=builder /usr/local/bin/signet /usr/local/bin/signet
USER 10001:10001
WORKDIR /var/lib/signet
# Commands default to --dir signet-data, that is /var/lib/signet/signet-data: CA
# certificates and keys, signet.toml, admin.token, provisioners/, and the SQLite database
# unless SIGNET_DATABASE_URL points at PostgreSQL. Keep it on a persistent volume.
VOLUME ["/var/lib/signet"]
# 8443: the API over HTTPS (`signet serve --listen 0.0.0.0:8443`).
# 8080: OCSP and CRLs over plain HTTP (`--responder-listen 0.0.0.0:8080`, or
#       `signet responder --listen 0.0.0.0:8080`).
EXPOSE 8443 8080
ENTRYPOINT ["signet"]
CMD ["--help"]
