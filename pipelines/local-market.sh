#!/usr/bin/env bash
# A local market of learning peers on a local directory: N peers, each with
# its own text, train candle models, query each other through the store, send
# gradients back and set weights from their gating layers; the coordinator
# closes each epoch. Prints per-epoch loss, Fisher rank, rank and stake share.
#
#   pipelines/local-market.sh [STORE_DIR]
#
# Settings (environment):
#   PEERS (4)    peers with generated text (styles: arithmetic, prose, records, code)
#   EPOCHS (5)   epochs to run
#   NOISE (0)    extra peers that answer with noise (an experiment: watch their share fall)
#   DATA         a folder of your own text instead: each subfolder feeds one
#                peer in turn (or every peer reads the whole folder if it has none)
#   STAKE (1000000000 per peer), PEER_ARGS (extra faceblock-peer flags)
#   PARAMS       a params.toml for `faceblock init` (SPEC 4), e.g. smaller seq_len/out_dim
#   FACEBLOCK_BIN_DIR  use the binaries in this folder instead of building them
#
# The build is the one `cargo test --workspace` uses: the same target
# directory (CARGO_TARGET_DIR if set, else ./target), so the two commands
# share one build. A cold debug build takes about 30 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-4}
EPOCHS=${EPOCHS:-5}
NOISE=${NOISE:-0}
STAKE=${STAKE:-1000000000}
PEER_ARGS=${PEER_ARGS:-}
STORE=${1:-${FACEBLOCK_STORE:-./local-market}}

if [ -e "$STORE" ]; then
  echo "error: $STORE already exists; remove it or name another directory" >&2
  exit 1
fi
if [ -n "${DATA:-}" ] && [ ! -d "$DATA" ]; then
  echo "error: DATA=$DATA is not a folder" >&2
  exit 1
fi
if [ -n "${FACEBLOCK_BIN_DIR:-}" ]; then
  BIN="$FACEBLOCK_BIN_DIR"
else
  # Same target directory as plain `cargo test`: CARGO_TARGET_DIR, else ./target.
  TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  echo "building faceblock and faceblock-peer (debug) into $TARGET"
  echo "(a cold build takes about 30 minutes on two cores; later runs take seconds)"
  cargo build --workspace --bins
  BIN="$TARGET/debug"
fi
FB="$BIN/faceblock"
PEER="$BIN/faceblock-peer"
for b in "$FB" "$PEER"; do
  [ -x "$b" ] || { echo "error: $b is missing; build with cargo build --workspace --bins" >&2; exit 1; }
done
export FACEBLOCK_STORE="$STORE"
N=$((PEERS + NOISE))
mkdir -p "$STORE/peers"
echo "uid,public_key,stake" > "$STORE/peers/genesis.csv"
STYLES=(arithmetic prose records code)
SUBDIRS=()
if [ -n "${DATA:-}" ]; then
  while IFS= read -r d; do SUBDIRS+=("$d"); done < <(find "$DATA" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | sort)
fi
for ((i = 0; i < N; i++)); do
  dir="$STORE/peers/$i"
  mkdir -p "$dir"
  pk=$("$PEER" keygen --out "$dir/peer.key")
  echo "$i,$pk,$STAKE" >> "$STORE/peers/genesis.csv"
  if [ -n "${DATA:-}" ]; then
    if [ ${#SUBDIRS[@]} -gt 0 ]; then
      ln -s "$(cd "${SUBDIRS[$((i % ${#SUBDIRS[@]}))]}" && pwd)" "$dir/data"
    else
      ln -s "$(cd "$DATA" && pwd)" "$dir/data"
    fi
  else
    "$PEER" text --out "$dir/data" --style "${STYLES[$((i % 4))]}" --seed "$i" > /dev/null
  fi
done
if [ -n "${PARAMS:-}" ]; then
  "$FB" init --genesis "$STORE/peers/genesis.csv" --params "$PARAMS"
else
  "$FB" init --genesis "$STORE/peers/genesis.csv"
fi
behaviour() { if [ "$1" -ge "$PEERS" ]; then echo noise; else echo honest; fi; }
step() {
  local i=$1 phase=$2
  # shellcheck disable=SC2086
  "$PEER" step --key "$STORE/peers/$i/peer.key" --data "$STORE/peers/$i/data" \
    --behaviour "$(behaviour "$i")" --phase "$phase" $PEER_ARGS
}

for ((e = 0; e < EPOCHS; e++)); do
  echo
  echo "== epoch $e"
  for ((i = 0; i < N; i++)); do step "$i" query > /dev/null; done
  for ((i = 0; i < N; i++)); do step "$i" answer > /dev/null; done
  for ((i = 0; i < N; i++)); do step "$i" learn > /dev/null; done
  "$FB" epoch run | sed 's/, digest.*//'
  "$FB" sql "SELECT s.uid, round(m.loss, 4) AS loss, round(s.fisher_rank, 9) AS fisher_rank,
      round(s.rank, 4) AS rank, round(s.stake_share, 4) AS stake_share
    FROM state s LEFT JOIN metrics m ON m.epoch = s.epoch AND m.uid = s.uid
    WHERE s.epoch = $e ORDER BY s.uid"
done

echo
echo "loss by epoch (each peer on its own text; nats per byte)"
"$FB" sql "SELECT epoch, round(avg(loss), 4) AS mean_loss, round(min(loss), 4) AS best, round(max(loss), 4) AS worst
  FROM metrics WHERE uid < $PEERS GROUP BY epoch ORDER BY epoch"
"$FB" status --top 5
"$FB" epoch verify --epoch $((EPOCHS - 1))
echo "ledger tables are under $STORE/ledger; peers' models under $STORE/peers/<uid>/peer.state"
echo "try: $FB --store $STORE sql \"SELECT * FROM fisher WHERE epoch = $((EPOCHS - 1))\""
