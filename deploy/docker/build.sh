#!/usr/bin/env bash
# The build steps of deploy/docker/Dockerfile, in one file that the image build and CI both run, so a
# broken step fails CI even though no image can be built there (no Docker engine on the CI machines).
#
#   deploy/docker/build.sh install-deps   Debian packages the build needs (as root)
#   deploy/docker/build.sh build OUT      the stripped chorus binary, web client embedded, into OUT/
#
# CHORUS_BUILD_PROFILE=release (the image) or dev (CI: the same commands on the already-built dev
# profile, which saves a 15-minute release build on a 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in
  install-deps)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends pkg-config libopus-dev ca-certificates >/dev/null
    ;;
  build)
    out="${2:?usage: build.sh build OUT}"
    profile="${CHORUS_BUILD_PROFILE:-release}"
    dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
    # Symbols stripped (a ~5x smaller binary); line tables for panics stay in the debug profile only.
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --locked --profile "$profile" --bin chorus
    mkdir -p "$out"
    install -m 0755 "target/$dir/chorus" "$out/chorus"
    if [ "$profile" != dev ]; then strip --strip-unneeded "$out/chorus" 2>/dev/null || true; fi
    "$out/chorus" --version
    ;;
  *)
    echo "usage: $0 install-deps | build OUT" >&2
    exit 2
    ;;
esac
