-- Dividends D_i = Σ_j β_ij · I_j with β_ij = B'_ij / Σ_k B'_kj (SPEC 5.2).
-- Per column j, three lists by peer index hold its scale (@column_shift,
-- bond_scales.sql), its bond total (@column_total, bond_totals.sql: the
-- exact integer rounded once to DOUBLE, the division's one rounding) and its
-- incentive (@incentive): each bond looks its column's up, so this is one
-- pass over the bonds with no join.
-- fb_share(bond, shift, total) is β from the same truncated term
-- ⌊B'_ij · 2^shift_j⌋ as the column's total. A column without incentive
-- adds exactly 0 (β is finite, in [0, 1]).
-- Σ_i D_i is 1, so D is summed at an absolute 2^-62, by holder (element i
-- of the list); the coordinator takes D_i = min(sum_i · 2^-62, 1).
-- The lookups are columns of their own and β · I multiplies columns: an
-- operator over a list lookup is named by printing the list (README.md,
-- "Lists").
WITH shares AS (
  SELECT holder,
         fb_share(bond, fb_at(@column_shift, peer), fb_at(@column_total, peer)) AS beta,
         fb_at(@incentive, peer) AS incentive
  FROM new_bonds
)
SELECT fb_fx_sum_by(holder, fb_fx(beta * incentive, 62)) AS dividends_fx
FROM shares
