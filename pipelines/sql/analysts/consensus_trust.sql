-- Consensus and trust over time: the share of stake that ranks each peer (trust), the consensus it earns from that, and its rank and incentive.
SELECT epoch,
       uid,
       trust,
       consensus,
       rank,
       incentive
FROM state
ORDER BY uid, epoch
