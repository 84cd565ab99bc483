-- Trust t_j = Σ_i ŝ_i · [w_ij > 0] (SPEC 5.2), as the exact stake that set any
-- weight on j (fb_mul_fx(S, 1, 0) = S, S_i looked up in @stake by source
-- index), summed by peer index (element j of the list); the coordinator
-- divides by ΣS once.
SELECT fb_fx_sum_by(dst, fb_mul_fx(fb_at(@stake, src), 1.0, 0)) AS trust_stake
FROM edges
WHERE weight > 0
