-- Consensus c_j = 1 / (1 + exp(−ρ (t_j − κ))) (SPEC 5.2); exp is libm's.
SELECT peer,
       1.0 / (1.0 + fb_exp(-$rho * (trust - $kappa))) AS consensus
FROM ranked
