#!/usr/bin/env bash
# RUSTC_WRAPPER for fuzz builds (scripts/fuzz_smoke.sh sets it): coverage instrumentation only for
# the crates whose code the targets exercise. The rest (MongoDB driver, Tokio, TLS, ...) links the
# same but compiles without the sanitizer-coverage pass, which roughly halves the build.
rustc=$1
shift
name=
prev=
for a in "$@"; do
  [ "$prev" = --crate-name ] && name=$a
  prev=$a
done
case "$name" in
  chat | signaling | sfu | str0m | serde_json | serde_urlencoded | form_urlencoded | percent_encoding | \
    jsonwebtoken | base64 | http | axum | axum_core | chorus_fuzz | gateway_frame | voice_message | \
    voice_token | offer_sdp | sfu_sdp | mentions | search_query | snowflake_id | pagination_query | validate | \
    forwarded_headers | stream_entry | tcp_framing | untrusted_content | turn | turn_message)
    exec "$rustc" "$@"
    ;;
esac
args=()
for a in "$@"; do
  case "$a" in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
    *) args+=("$a") ;;
  esac
done
exec "$rustc" "${args[@]}"
