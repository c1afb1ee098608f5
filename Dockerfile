# syntax=docker/dockerfile:1
# Multi-stage build: a static ferry binary on a distroless base, run as a
# non-root user. Build: docker build -t ferry:dev .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ferry ./cmd/ferry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ferry /usr/local/bin/ferry
# 65532 is distroless's "nonroot" user.
USER 65532:65532
WORKDIR /var/lib/ferry
VOLUME /var/lib/ferry
EXPOSE 1883 8080
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve", "--mqtt-addr", "0.0.0.0:1883", "--http-addr", "0.0.0.0:8080", "--data-dir", "/var/lib/ferry", "--log-format", "json"]
