-- Per bond column j, the scale its sum Σ_k B'_kj is taken at, fixed by the
-- column's largest bond: element j of fb_max_by's list. The coordinator
-- turns each into a scale with fb_shift_for's function (every term below
-- 2^62, the largest with 62 bits; 0 for an empty column) and registers the
-- n rows as `scales` for bond_totals.sql. A term's truncation depends on the
-- scale, so the scales come first, in their own pass.
SELECT fb_max_by(peer, bond) AS max_bond FROM new_bonds
