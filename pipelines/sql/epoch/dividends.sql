-- Dividends D_i = Σ_j β_ij · I_j with β_ij = B'_ij / Σ_k B'_kj (SPEC 5.2).
-- Each column j is summed at its own scale, from its largest bond, and β uses
-- the same fixed-point terms above and below the line, so Σ_k β_kj = 1 for
-- bonds of any size. Σ_i D_i is 1, so D is summed at an absolute 2^-62.
WITH scale AS (
  SELECT peer, fb_shift_for(max(bond)) AS shift FROM new_bonds GROUP BY peer
),
q AS (
  SELECT b.holder, b.peer, fb_fx(b.bond, s.shift) AS q
  FROM new_bonds b JOIN scale s ON s.peer = b.peer
),
cols AS (SELECT peer, fb_fx_sum(q) AS total FROM q GROUP BY peer)
SELECT q.holder AS peer,
       least(fb_unscale(fb_fx_sum(fb_fx(fb_ratio(q.q, cols.total) * r.incentive, 62)), 62), 1.0) AS dividends
FROM q
JOIN cols ON cols.peer = q.peer
JOIN ranked r ON r.peer = q.peer
WHERE r.incentive > 0
GROUP BY q.holder
