-- Fisher scores (SPEC 5.3, whitepaper eq. 2 and 12), run by the coordinator's
-- `fisher` module over the checked exchange tensors of one epoch:
--
--   activations(src, dst, example, values)  f_i(x): src = querier j, dst = answerer i
--   gradients(src, dst, example, values)    g_{j,i}(x) = dL_j/df_i(x), written by j
--
-- phi_{j,i} = sum over x answered by i of <g_{j,i}(x), f_i(x)>^2.
--
-- fb_dot accumulates in f64 in index order and fb_sum sums in an order fixed by
-- the values alone, so the scores are bit-identical at any partition count
-- (SPEC 8); plain SUM would depend on how rows reach it.
SELECT src,
       dst,
       fb_sum(d * d) AS score,
       COUNT(*) AS examples
FROM (
    SELECT g.src, g.dst, fb_dot(g."values", a."values") AS d
    FROM gradients g
    JOIN activations a
      ON g.src = a.src AND g.dst = a.dst AND g.example = a.example
) answered
GROUP BY src, dst
ORDER BY src, dst
