# commit-back: one static binary in an empty image.
#
# A single-architecture (linux/amd64) build with internet access:
#   docker build -t commit-back:amd64 .
# Releases are published by bitbucket-pipelines.yml for amd64 and arm64 under
# one tag (scripts/build-image.sh); do not push this image under that tag.
# The builder links glibc statically with vendored libgit2 and libssh2 and
# the OpenSSL scripts/build-openssl.sh configures (scripts/build-static.sh,
# as CI builds it); the final image holds the binary and a CA bundle only.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/build-static.sh x86_64-unknown-linux-gnu

FROM debian:bookworm-slim AS certs
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates

FROM scratch
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/pipe.yml /pipe.yml
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/commit-back /commit-back
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /opt/atlassian/pipelines/agent/build
ENTRYPOINT ["/commit-back"]
