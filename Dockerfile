# One image for every service: `rebalancer serve target|monitor|execution`.
# Not built on the development machines (they have no Docker engine); the
# build needs nothing but cargo (protox compiles the protos, no protoc).
#
# Base images are pinned by tag here; the release pipeline resolves them to
# digests (`docker buildx build --build-arg RUST_IMAGE=rust@sha256:...`), as
# it pins the image the manifests run (kustomize `images:`).
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --version 0.1.73 --locked
WORKDIR /src

# The dependency graph only (manifests and lock file): this layer, and the
# next stage's build of every dependency, stay cached until a Cargo.toml or
# Cargo.lock changes.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p rebalancer-server --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p rebalancer-server --bin rebalancer

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/target/release/rebalancer /usr/local/bin/rebalancer
USER nonroot
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/rebalancer"]
# No default service: the image never starts an unauthenticated dev stack on
# all interfaces by accident. Kubernetes passes `serve <service>`; for a
# local try, `docker run -p 50051:50051 IMAGE dev --listen 0.0.0.0:50051`.
CMD ["--help"]
