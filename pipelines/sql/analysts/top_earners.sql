-- Top earners over a range of epochs (the last 10 committed; change `10` or set first/last in `span`): stake minted to each peer, largest first.
WITH span AS (
    SELECT GREATEST(MAX(epoch) - 10 + 1, 0) AS first_epoch,
           MAX(epoch) AS last_epoch
    FROM epochs
)
SELECT s.uid,
       SUM(s.emission) AS earned,
       SUM(s.emission) / CAST(SUM(SUM(s.emission)) OVER () AS DOUBLE) AS share_of_minted,
       MIN(span.first_epoch) AS first_epoch,
       MIN(span.last_epoch) AS last_epoch
FROM state s
CROSS JOIN span
WHERE s.epoch BETWEEN span.first_epoch AND span.last_epoch
GROUP BY s.uid
ORDER BY earned DESC, s.uid
