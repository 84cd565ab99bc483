-- Bonds in closed form (SPEC 5.2's B' = B + S · w, summed over the holder's
-- segment): B'_ij = bond_ij + w_ij · ΣS_i, with bond_ij the bond after the
-- segment's first epoch and ΣS_i the holder's stake since (element i of the
-- per-holder list $bond_stake, an exact integer), converted to DOUBLE once,
-- then one multiply and one add (math/bonds.rs closed_form).
-- Registered as the view `new_bonds`: the dividends' plans read it, nothing
-- materialises it. An entry may be 0 (a weight set by a holder without
-- stake); it adds nothing to a column's largest bond, its total or a
-- dividend, so the view does not spend a filter on it.
SELECT holder, peer, bond + weight * CAST(fb_at($bond_stake, holder) AS DOUBLE) AS bond
FROM segments
