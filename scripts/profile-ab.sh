#!/usr/bin/env bash
# Release-profile A/B (make profile-ab): builds the functions and the hello-world
# baseline once per candidate profile, each into its own target directory, then has
# the bench measure them side by side (zipped size, init and request times under the
# Lambda Runtime Interface Emulator) and write docs/release-profile.md.
# Candidates are "name:opt-level:lto"; the first is Cargo.toml's [profile.release]
# and also builds the bench binary that measures them all.
set -euo pipefail
cd "$(dirname "$0")/.."
candidates=(${PROFILE_CANDIDATES:-"s-fat:s:fat" "3-fat:3:fat" "s-thin:s:thin" "z-fat:z:fat"})
bins=(--bin rooms --bin conversations --bin messages --bin analytics --bin analytics-rollup --bin hello)
base="${CARGO_TARGET_DIR:-target}/profile-ab"
dirs=()
for candidate in "${candidates[@]}"; do
  IFS=: read -r name opt lto <<<"$candidate"
  started=$(date +%s)
  CARGO_TARGET_DIR="$base/$name" CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt" CARGO_PROFILE_RELEASE_LTO="$lto" \
    cargo build --release --locked -q "${bins[@]}" $([ ${#dirs[@]} -eq 0 ] && echo --bin bench)
  seconds=$(( $(date +%s) - started ))
  echo "$name (opt-level $opt, lto $lto): built in $seconds s"
  dirs+=("$name=$base/$name/release=$seconds")
done
"$base/${candidates[0]%%:*}/release/bench" profiles "${dirs[@]}"
