-- Median clipping (consensus = "median_clip"): c_j is the weight of the first
-- edge of column j, largest weight first (ties by src), at which the running
-- sum of the stake behind the column reaches $need = ⌈κ·ΣS⌉; each weight is
-- clipped at it: w'_ij = min(w_ij, c_j). Stake sums are exact integers
-- (fb_fx_sum over fb_mul_fx(S, 1, 0) = S, S looked up in @stake by source
-- index), so c_j is the same at any partition count. Columns without that
-- support keep no weight.
WITH staked AS (
  SELECT e.src, e.dst, e.weight, fb_mul_fx(fb_at(@stake, e.src), 1.0, 0) AS s
  FROM edges e
  WHERE e.weight > 0
),
running AS (
  SELECT dst, weight,
         fb_fx_sum(s) OVER (PARTITION BY dst ORDER BY weight DESC, src
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
  FROM staked
),
levels AS (SELECT dst, max(weight) AS clip FROM running WHERE cum >= $need GROUP BY dst)
SELECT e.src, e.dst, least(e.weight, l.clip) AS weight, l.clip
FROM edges e JOIN levels l ON l.dst = e.dst
WHERE e.weight > 0 AND l.clip > 0
