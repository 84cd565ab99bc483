-- Dividends D_i = Σ_j β_ij · I_j with β_ij = B'_ij / Σ_k B'_kj (SPEC 5.2).
-- `columns` holds per peer j its scale, its bond total (bond_scales.sql,
-- bond_totals.sql; the exact integer rounded once to DOUBLE, the division's
-- one rounding) and its incentive: one join, one pass over the bonds.
-- fb_share(bond, shift, total) is β from the same truncated term
-- ⌊B'_ij · 2^shift_j⌋ as the column's total.
-- Σ_i D_i is 1, so D is summed at an absolute 2^-62, by holder (element i
-- of the list); the coordinator takes D_i = min(sum_i · 2^-62, 1).
SELECT fb_fx_sum_by(b.holder, fb_fx(fb_share(b.bond, c.shift, c.total) * c.incentive, 62)) AS dividends_fx
FROM new_bonds b
JOIN columns c ON c.peer = b.peer
WHERE c.incentive > 0
