-- Loss L = −Σ_j r_j (f_j − 0.5) (SPEC 5.2; f as in incentive.sql), summed at a scale from its largest
-- |term|; the coordinator raises k when L > 0 (the peg).
WITH t AS (SELECT rank * (factor - 0.5) AS x FROM ranked),
     scale AS (SELECT fb_shift_for(max(abs(x))) AS shift FROM t)
SELECT -fb_unscale(fb_fx_sum(fb_fx(t.x, scale.shift)), scale.shift) AS loss
FROM t CROSS JOIN scale
GROUP BY scale.shift
