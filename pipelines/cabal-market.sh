#!/usr/bin/env bash
# Stake mechanics alone (no models): honest peers rank each other, a small
# cabal ranks only itself; 20 epochs; prints each side's stake share.
#
#   pipelines/cabal-market.sh [STORE_DIR]
#
# Settings (environment): HONEST (8), CABAL (3), EPOCHS (20), STAKE (1000000000 per peer).
set -euo pipefail
cd "$(dirname "$0")/.."
HONEST=${HONEST:-8}
CABAL=${CABAL:-3}
EPOCHS=${EPOCHS:-20}
STAKE=${STAKE:-1000000000}
STORE=${1:-${FACEBLOCK_STORE:-./cabal-market}}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/faceblock/target}"

if [ -e "$STORE" ]; then
  echo "error: $STORE already exists; remove it or name another directory" >&2
  exit 1
fi
echo "building faceblock and faceblock-peer (debug) ..."
cargo test --workspace --no-run --quiet
FB="$CARGO_TARGET_DIR/debug/faceblock"
PEER="$CARGO_TARGET_DIR/debug/faceblock-peer"
export FACEBLOCK_STORE="$STORE"
mkdir -p "$STORE/keys"
N=$((HONEST + CABAL))
echo "uid,public_key,stake" > "$STORE/keys/genesis.csv"
for ((i = 0; i < N; i++)); do
  pk=$("$PEER" keygen --out "$STORE/keys/peer$i.key")
  echo "$i,$pk,$STAKE" >> "$STORE/keys/genesis.csv"
done
"$FB" init --genesis "$STORE/keys/genesis.csv"

RANDOM=42
for ((e = 0; e < EPOCHS; e++)); do
  for ((i = 0; i < HONEST; i++)); do
    row=""
    for ((j = 0; j < HONEST; j++)); do
      [ "$i" = "$j" ] && continue
      row="$row${row:+,}$j=$((RANDOM % 9 + 1))"
    done
    "$PEER" weights --key "$STORE/keys/peer$i.key" --set "$row" > /dev/null
  done
  for ((i = HONEST; i < N; i++)); do
    row=""
    for ((j = HONEST; j < N; j++)); do
      [ "$i" = "$j" ] && continue
      row="$row${row:+,}$j=1"
    done
    "$PEER" weights --key "$STORE/keys/peer$i.key" --set "$row" > /dev/null
  done
  "$FB" epoch run | sed 's/, digest.*//'
done

echo
echo "stake share by epoch (honest: uids 0-$((HONEST - 1)), cabal: uids $HONEST-$((N - 1)))"
"$FB" sql "SELECT epoch,
    round(sum(CASE WHEN uid < $HONEST THEN stake_share ELSE 0 END), 4) AS honest_share,
    round(sum(CASE WHEN uid >= $HONEST THEN stake_share ELSE 0 END), 4) AS cabal_share,
    sum(CASE WHEN uid >= $HONEST THEN emission ELSE 0 END) AS cabal_emission
  FROM state GROUP BY epoch ORDER BY epoch"
"$FB" status --top 5
"$FB" epoch verify --epoch $((EPOCHS - 1))
echo "ledger tables are under $STORE/ledger; try: $FB --store $STORE sql \"SELECT * FROM epochs\""
