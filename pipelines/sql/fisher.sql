-- Fisher scores (SPEC 5.3, whitepaper eq. 2 and 12), run by the coordinator's
-- `fisher` module over the checked exchange of one epoch:
--
--   answered(src, dst, example, d)   d = <g_{j,i}(x), f_i(x)>: src = querier j,
--                                    dst = answerer i, one row per example with
--                                    both an answer and a gradient
--
-- phi_{j,i} = sum over x answered by i of d^2.
--
-- d is accumulated in f64 in index order, and fb_sum sums in an order fixed by
-- the values alone, so the scores are bit-identical at any partition count
-- (SPEC 8); plain SUM would depend on how rows reach it.
SELECT src,
       dst,
       fb_sum(d * d) AS score,
       COUNT(*) AS examples
FROM answered
GROUP BY src, dst
ORDER BY src, dst
