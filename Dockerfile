# Portcullis in a container: `docker build -t portcullis .` then, for a pfSense target (no privilege needed):
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges -p 127.0.0.1:8787:8787 \
#     -v /etc/portcullis:/etc/portcullis:ro -v portcullis-data:/var/lib/portcullis portcullis
# To manage nftables of the host, add `--network host --cap-add NET_ADMIN` (nft alone carries that capability).
# docs/RELEASES.md says more.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --profile dist -p portcullis --bin portcullis

FROM debian:bookworm-slim
# nft and ip for nftables targets; libcap2-bin only to give nft its capability, then removed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iproute2 ca-certificates libcap2-bin \
    && setcap cap_net_admin+ep /usr/sbin/nft \
    && apt-get purge -y libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/portcullis --create-home --shell /usr/sbin/nologin portcullis
COPY --from=build /src/target/dist/portcullis /usr/bin/portcullis
COPY --from=build /src/LICENSE /usr/share/doc/portcullis/LICENSE
USER 10001:10001
ENV PORTCULLIS_DATA_DIR=/var/lib/portcullis \
    PORTCULLIS_CONFIG=/etc/portcullis/config.yaml
VOLUME ["/var/lib/portcullis"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/bin/portcullis", "config", "check"]
ENTRYPOINT ["/usr/bin/portcullis"]
# A bind beyond loopback needs http.tokens in the config (portcullis token new PRINCIPAL).
CMD ["serve", "--http", "0.0.0.0:8787"]
