-- Σ_k B'_kj per column j (element j of the list), over the same truncated
-- terms ⌊B'_kj · 2^shift_j⌋ that β's numerators use in `dividends.sql` (so
-- Σ_k β_kj is 1 to the rounding of one division, whatever the bonds' size).
SELECT fb_fx_sum_by(b.peer, fb_fx(b.bond, s.shift)) AS total
FROM new_bonds b
JOIN scales s ON s.peer = b.peer
