-- Rank r_j = Σ_i ŝ_i · w_ij (SPEC 5.2), as Σ_i S_i · w_ij in stake units:
-- fb_mul_fx(S_i, w_ij, $shift) = ⌊S_i · w_ij · 2^shift⌋ exactly, with
-- $shift = 126 − bitlen(ΣS) so no sum can pass 2^126. Each edge carries its
-- source's stake (`edges.stake`), so this is one pass over the edges with no
-- join. fb_fx_sum_by sums by peer index: element j of the list is rank_fx_j
-- (a GROUP BY dst without hashing). The coordinator divides by ΣS once
-- (r_j = rank_fx_j / ΣS / 2^shift).
SELECT fb_fx_sum_by(dst, fb_mul_fx(stake, weight, $shift)) AS rank_fx
FROM edges
