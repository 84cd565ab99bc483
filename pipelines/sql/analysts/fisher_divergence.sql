-- Peers whose submitted weights diverge most from their own Fisher scores (total variation distance: 0 same row, 1 disjoint), over all committed epochs.
SELECT uid,
       AVG(fisher_divergence) AS mean_divergence,
       MAX(fisher_divergence) AS max_divergence,
       COUNT(fisher_divergence) AS epochs,
       MAX(epoch) AS last_epoch
FROM state
WHERE fisher_divergence IS NOT NULL
GROUP BY uid
ORDER BY mean_divergence DESC, uid
