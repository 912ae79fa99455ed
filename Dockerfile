# podpin's container image: a static binary on distroless, running as the
# unprivileged user 65532 (nonroot).
#
#   docker build -t podpin .
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/podpin/podpin:0.1.0 .

FROM golang:1.27 AS build
WORKDIR /src
# Modules first, so a change of the code does not download them again.
COPY go.mod go.sum ./
# go.mod replaces one test-only module with this folder.
COPY third_party third_party
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/podpin ./cmd/podpin

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/podpin /podpin
USER 65532:65532
# 8080: clients; 9901: admin (health, metrics, sessions API).
EXPOSE 8080 9901
ENTRYPOINT ["/podpin"]
