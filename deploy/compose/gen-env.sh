#!/usr/bin/env sh
# Prints a .env for compose.yml with a fresh voice secret: deploy/compose/gen-env.sh > deploy/compose/.env
set -eu
secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
sed "s/^CHORUS_VOICE_SECRET=.*/CHORUS_VOICE_SECRET=$secret/" "$(dirname "$0")/.env.example"
