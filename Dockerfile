# A static fleetmeter in a minimal image. The daemon reads the agents'
# transcripts and the host's /proc, so run it with those mounted, e.g.:
#   docker run -d --pid=host -v /proc:/host/proc:ro -e HOST_PROC=/host/proc \
#     -v /home/agent/.openclaw:/openclaw:ro -e FLEETMETER_OPENCLAW_DIRS=/openclaw \
#     -v fleetmeter:/var/lib/fleetmeter -p 127.0.0.1:8767:8767 \
#     -e FLEETMETER_LISTEN=0.0.0.0:8767 -e FLEETMETER_AUTH_TOKEN_FILE=/run/secrets/token fleetmeter
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/fleetmeter/fleetmeter/appliance.Version=${VERSION}" -o /fleetmeter .

FROM gcr.io/distroless/static-debian12
COPY --from=build /fleetmeter /fleetmeter
ENV FLEETMETER_DATA_DIR=/var/lib/fleetmeter
VOLUME /var/lib/fleetmeter
EXPOSE 8767
ENTRYPOINT ["/fleetmeter"]
CMD ["serve"]
