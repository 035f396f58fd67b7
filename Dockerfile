# fleetmeter in a container: the static binary on distroless, as a
# non-root user, meant to run with a read-only root filesystem, the host's
# /proc and /sys and the agents' state dirs mounted read-only (compose.yaml
# does all of it; README, "Container", explains each line). No Docker? The
# systemd service (sudo fleetmeter install) does the same with less.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags nomsgpack \
      -ldflags "-s -w -X github.com/fleetmeter/fleetmeter/appliance.Version=${VERSION}" \
      -o /out/fleetmeter . \
 && mkdir -p /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fleetmeter /usr/local/bin/fleetmeter
# The data dir belongs to the image's user (65532, "nonroot"); a named
# volume mounted there starts with this owner.
COPY --from=build --chown=65532:65532 /out/data /var/lib/fleetmeter
USER 65532:65532
ENV FLEETMETER_DATA_DIR=/var/lib/fleetmeter \
    FLEETMETER_RUNTIME_DIR=/run/fleetmeter \
    FLEETMETER_LISTEN=127.0.0.1:8767 \
    HOST_PROC=/host/proc \
    HOST_SYS=/host/sys
VOLUME /var/lib/fleetmeter
EXPOSE 8767
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/fleetmeter", "health"]
ENTRYPOINT ["/usr/local/bin/fleetmeter"]
CMD ["serve"]
