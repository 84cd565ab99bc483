-- Who holds bonds in whom after an epoch (the last committed; change `at`), largest first, with each holder's share of all bonds in the peer (what its dividends from that peer are in proportion to).
WITH at AS (
    SELECT MAX(epoch) AS epoch FROM epochs
),
b AS (
    SELECT b.epoch, b.holder, b.peer, b.bond
    FROM bonds_in_force b
    JOIN at ON b.epoch = at.epoch
)
SELECT epoch,
       holder,
       peer,
       bond,
       bond / SUM(bond) OVER (PARTITION BY peer) AS share_of_peer
FROM b
ORDER BY bond DESC, holder, peer
