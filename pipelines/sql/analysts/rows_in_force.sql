-- Who ranks whom: the weight rows in force at an epoch (the last committed; change `at`), with the epoch each row was submitted in.
WITH at AS (
    SELECT MAX(epoch) AS epoch FROM epochs
)
SELECT w.epoch,
       w.src,
       w.dst,
       w.weight,
       w.weights_epoch AS submitted_epoch
FROM weights_in_force w
JOIN at ON w.epoch = at.epoch
ORDER BY w.src, w.dst
