# Missive container image: a release build on Debian bookworm, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin missive

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/missive --create-home missive
COPY --from=build /src/target/release/missive /usr/local/bin/missive
COPY config/missive.toml /etc/missive/missive.toml
USER missive
WORKDIR /var/lib/missive
ENV MISSIVE_CONFIG=/etc/missive/missive.toml \
    MISSIVE_HTTP_ADDR=0.0.0.0:8025 \
    MISSIVE_SMTP_ADDR=0.0.0.0:2587 \
    MISSIVE_SMTPS_ADDR=0.0.0.0:2465 \
    MISSIVE_MX_ADDR=0.0.0.0:2525 \
    MISSIVE_LOG_FORMAT=json
EXPOSE 8025 2587 2465 2525
ENTRYPOINT ["missive"]
CMD ["serve"]
