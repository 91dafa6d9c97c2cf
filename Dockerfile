# pgbelay: build with the Rust toolchain, run on a slim Debian.
#   docker build -t pgbelay .
#   docker run --rm -p 6432:6432 -e PGBELAY_UPSTREAM=db.example:5432 pgbelay

FROM rust:1-bookworm AS build
# pg_query generates its bindings with bindgen, which needs libclang.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# `pgbelay demo` embeds the fixture at compile time.
COPY sql-fixtures ./sql-fixtures
RUN cargo build --release --bin pgbelay \
    && cp target/release/pgbelay /usr/local/bin/pgbelay

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin pgbelay
COPY --from=build /usr/local/bin/pgbelay /usr/local/bin/pgbelay
USER pgbelay
ENV PGBELAY_LISTEN=0.0.0.0:6432
EXPOSE 6432
ENTRYPOINT ["pgbelay", "serve"]
