-- Bonds accumulate: B'_ij = B_ij + S_i · w_ij (SPEC 5.2); zero bonds are not kept.
WITH fresh AS (
  SELECT e.src, e.dst, CAST(p.stake AS DOUBLE) * e.weight AS add_bond
  FROM edges e JOIN peers p ON p.peer = e.src
),
merged AS (
  SELECT COALESCE(b.holder, f.src) AS holder,
         COALESCE(b.peer, f.dst) AS peer,
         CASE WHEN b.bond IS NULL THEN f.add_bond
              WHEN f.add_bond IS NULL THEN b.bond
              ELSE b.bond + f.add_bond END AS bond
  FROM bonds b FULL OUTER JOIN fresh f ON b.holder = f.src AND b.peer = f.dst
)
SELECT holder, peer, bond FROM merged WHERE bond > 0
