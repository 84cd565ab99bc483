-- The peg over time: the loss of each epoch, the k rows had to meet, and the k of the next epoch (k rises after a positive loss).
SELECT epoch,
       loss,
       k,
       k_next,
       rows_in_force,
       rows_rejected,
       emission
FROM epochs
ORDER BY epoch
