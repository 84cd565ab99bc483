-- Rank r_j = Σ_i ŝ_i · w_ij (SPEC 5.2), as Σ_i S_i · w_ij in stake units:
-- fb_mul_fx(S_i, w_ij, $shift) = ⌊S_i · w_ij · 2^shift⌋ exactly, with
-- $shift = 126 − bitlen(ΣS) so no sum can pass 2^126. S_i is looked up by
-- the edge's source index in the per-peer list @stake (fb_at), so this is
-- one pass over the edges with no join. fb_fx_sum_by sums by peer index:
-- element j of the list is rank_fx_j (a GROUP BY dst without hashing). The
-- coordinator divides by ΣS once (r_j = rank_fx_j / ΣS / 2^shift).
SELECT fb_fx_sum_by(dst, fb_mul_fx(fb_at(@stake, src), weight, $shift)) AS rank_fx
FROM edges
