-- Incentive I_j = r_j f_j / Σ_k r_k f_k, 0 for all if the sum is 0 (SPEC 5.2);
-- f is the consensus c under "sigmoid", 1 for a supported column under "median_clip".
-- The sum is taken at a scale from its largest term (fb_shift_for), so ranks
-- that are all tiny still add up.
WITH rc AS (SELECT peer, rank * factor AS rc FROM ranked),
     scale AS (SELECT fb_shift_for(max(rc)) AS shift FROM rc),
     total AS (
       SELECT fb_unscale(fb_fx_sum(fb_fx(rc.rc, scale.shift)), scale.shift) AS total
       FROM rc CROSS JOIN scale
       GROUP BY scale.shift
     )
SELECT rc.peer,
       CASE WHEN total.total > 0 THEN least(rc.rc / total.total, 1.0) ELSE 0.0 END AS incentive
FROM rc CROSS JOIN total
