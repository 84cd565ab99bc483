-- Σ_k B'_kj per column j (element j of the list), over the same truncated
-- terms ⌊B'_kj · 2^shift_j⌋ that β's numerators use in `dividends.sql` (so
-- Σ_k β_kj is 1 to the rounding of one division, whatever the bonds' size).
-- shift_j is element j of @column_shift (bond_scales.sql), looked up by the
-- bond's column: one pass over the bonds, no join.
SELECT fb_fx_sum_by(peer, fb_fx(bond, fb_at(@column_shift, peer))) AS total
FROM new_bonds
