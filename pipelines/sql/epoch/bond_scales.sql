-- Per bond column j, the scale its sum Σ_k B'_kj is taken at: fixed by the
-- column's largest bond (fb_shift_for: every term below 2^62, the largest
-- with 62 bits). A term's truncation depends on the scale, so the scales
-- come first, in their own aggregate; the coordinator registers these n
-- rows as `scales` for bond_totals.sql and dividends.sql.
SELECT peer, fb_shift_for(max(bond)) AS shift FROM new_bonds GROUP BY peer
