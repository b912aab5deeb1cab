#!/usr/bin/env bash
# `make image`: hubspot-relay:<version> and :latest from the Containerfile, with docker where a
# daemon answers, else podman. Where the default base cannot be pulled (no route to Docker Hub),
# a stand-in base is made from Debian's packages with mmdebstrap, once, and used instead.
#
# `scripts/image.sh --services`: also stand-ins for the official redis and nginx images, from
# Debian's packages, for deploy/compose.yaml where Docker Hub cannot be reached
# (REDIS_IMAGE=NGINX_IMAGE=localhost/hubspot-relay-services:bookworm).
set -euo pipefail
services=no
if [ "${1:-}" = "--services" ]; then services=yes; shift; fi
version="$1"
cd "$(dirname "$0")/.."
default_base="docker.io/library/python:3.12-slim"
standin="localhost/hubspot-relay-base:bookworm"

if docker info >/dev/null 2>&1; then
    engine=(docker)
    build=(docker build)
else
    command -v podman >/dev/null || { echo "make image: neither a docker daemon nor podman" >&2; exit 1; }
    engine=(podman)
    # chroot isolation: this kernel refuses the default OCI runtime's namespaces for builds;
    # docker format: OCI images drop HEALTHCHECK.
    build=(podman build --isolation chroot --format docker)
fi

base="${IMAGE_BASE:-}"
if [ -z "$base" ]; then
    if "${engine[@]}" image inspect "$default_base" >/dev/null 2>&1 \
        || timeout 120 "${engine[@]}" pull -q "$default_base" >/dev/null 2>&1; then
        base="$default_base"
    else
        base="$standin"
        if ! "${engine[@]}" image inspect "$standin" >/dev/null 2>&1; then
            command -v mmdebstrap >/dev/null || { echo "make image: $default_base cannot be pulled and mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
            echo "make image: $default_base cannot be pulled; making $standin from Debian's packages" >&2
            tarball="$(mktemp --suffix=.tar)"
            trap 'rm -f "$tarball"' EXIT
            mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
                --aptopt='Acquire::Languages "none"' \
                --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
                --dpkgopt='path-exclude=/usr/share/locale/*' \
                bookworm "$tarball"
            "${engine[@]}" import --change 'CMD ["/bin/bash"]' "$tarball" "$standin" >/dev/null
        fi
    fi
fi

secret=()
cert="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
if [ -n "$cert" ] && [ -s "$cert" ]; then
    secret=(--secret "id=pip-cert,src=$cert")
fi

echo "make image: ${build[*]} on $base" >&2
"${build[@]}" "${secret[@]}" --build-arg "BASE=$base" --build-arg "VERSION=$version" \
    -t "hubspot-relay:$version" -t "hubspot-relay:latest" -f Containerfile .
if [ "$services" = yes ]; then
    "${build[@]}" --build-arg "BASE=$base" -t localhost/hubspot-relay-services:bookworm \
        -f deploy/compose/services.Containerfile deploy/compose
fi
size="$("${engine[@]}" image inspect --format '{{.Size}}' "hubspot-relay:$version")"
echo "hubspot-relay:$version built on $base: $((size / 1000000)) MB"
