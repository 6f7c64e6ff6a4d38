# One image for every service: `rebalancer serve target|monitor|execution`.
# Not built on the development machines (they have no Docker engine); the
# build needs nothing but cargo (protox compiles the protos, no protoc).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rebalancer-server --bin rebalancer

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rebalancer /usr/local/bin/rebalancer
USER nonroot
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/rebalancer"]
# No default service: the image never starts an unauthenticated dev stack on
# all interfaces by accident. Kubernetes passes `serve <service>`; for a
# local try, `docker run -p 50051:50051 IMAGE dev --listen 0.0.0.0:50051`.
CMD ["--help"]
