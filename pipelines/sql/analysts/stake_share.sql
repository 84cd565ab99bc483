-- Stake share per peer over epochs: each peer's stake and its share of all stake after each committed epoch.
SELECT epoch,
       uid,
       stake,
       stake_share
FROM state
ORDER BY epoch, uid
