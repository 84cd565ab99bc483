-- Rank r_j = Σ_i ŝ_i · w_ij (SPEC 5.2), as Σ_i S_i · w_ij in stake units:
-- fb_mul_fx(S_i, w_ij, $shift) = ⌊S_i · w_ij · 2^shift⌋ exactly, with
-- $shift = 126 − bitlen(ΣS) so no sum can pass 2^126. The coordinator divides
-- by ΣS once (r_j = rank_fx / ΣS / 2^shift).
SELECT e.dst AS peer,
       fb_fx_sum(fb_mul_fx(p.stake, e.weight, $shift)) AS rank_fx
FROM edges e
JOIN peers p ON p.peer = e.src
GROUP BY e.dst
