# syntax=docker/dockerfile:1
#
# The quiesce gateway image: a static binary on a small non-root base.
#
#   docker build -t quiesce .
#   make image                          # the same, stamped with the git version and revision
#   docker run --rm -p 8470:8470 -v quiesce-home:/var/lib/quiesce --stop-timeout 35 quiesce --dev
#
# (--stop-timeout: docker stop waits 10s by default, less than the 29s the
# shutdown sequence may take with the default timeouts.)
#
# deploy/k8s/ runs this image as a StatefulSet (one home volume per pod).

# Build stage: a static, reproducible binary (no cgo, no local paths).
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (see .dockerignore), so the toolchain cannot
# stamp the version and revision by itself: pass them, or "quiesce version"
# and quiesce_build_info say "(devel)" and "unknown".
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t quiesce .
ARG VERSION=
ARG REVISION=
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/quiesce-dev/quiesce/internal/buildinfo.Version=${VERSION} -X github.com/quiesce-dev/quiesce/internal/buildinfo.Revision=${REVISION}" \
      -o /out/quiesce ./cmd/quiesce
# The home, owned by the runtime user below and private to it: a volume
# mounted here starts with this ownership when it is empty (Docker), and a
# container without a volume still has a writable home.
RUN mkdir -p /out/home && chmod 0700 /out/home

# Runtime stage: distroless static, non-root (uid 65532), no shell.
#
# No shell means the exec agent (--agent exec, which runs its command with
# /bin/sh -c) cannot run here: the echo and http agents can. For the exec
# agent, build on an image with /bin/sh and whatever the command needs
# instead (e.g. FROM alpine:3, then "adduser -D -u 65532 quiesce"), keeping
# the USER line.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/quiesce /usr/local/bin/quiesce
COPY --from=build --chown=65532:65532 /out/home /var/lib/quiesce
# Client commands in the container (kubectl exec ... quiesce status, the
# preStop hook's quiesce drain) find the home without --home.
ENV QUIESCE_HOME=/var/lib/quiesce
USER 65532:65532
EXPOSE 8470
# exec form: quiesce is PID 1 of the container, so it gets the SIGTERM of
# "docker stop" or the kubelet itself, and a container restart gives a new
# PID 1, so a drain marker left in the home reads as stale (the epoch rule).
# Arguments after the image name (or Kubernetes "args") add flags, e.g.
# --tokens-file, --drain-timeout.
ENTRYPOINT ["quiesce", "run", "--addr", "0.0.0.0:8470", "--home", "/var/lib/quiesce"]
