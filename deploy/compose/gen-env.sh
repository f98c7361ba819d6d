#!/usr/bin/env sh
# Prints a .env for compose.yml and cluster.yml with fresh secrets: deploy/compose/gen-env.sh > deploy/compose/.env
set -eu
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
voice=$(hex 32)
turn=$(hex 32)
grafana=$(hex 16)
sed -e "s/^CHORUS_VOICE_SECRET=.*/CHORUS_VOICE_SECRET=$voice/" \
    -e "s/^CHORUS_TURN_SECRET=.*/CHORUS_TURN_SECRET=$turn/" \
    -e "s/^GRAFANA_ADMIN_PASSWORD=.*/GRAFANA_ADMIN_PASSWORD=$grafana/" \
    "$(dirname "$0")/.env.example"
