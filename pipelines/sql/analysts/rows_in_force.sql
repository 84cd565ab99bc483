-- Who ranks whom: the weight rows in force at an epoch (the last committed; change `at`), with the epoch each row was submitted in.
WITH at AS (
    SELECT MAX(epoch) AS epoch FROM epochs
)
SELECT s.epoch,
       w.src,
       w.dst,
       w.weight,
       s.weights_epoch AS submitted_epoch
FROM state s
JOIN at ON s.epoch = at.epoch
JOIN weights w ON w.epoch = s.weights_epoch AND w.src = s.uid
ORDER BY w.src, w.dst
