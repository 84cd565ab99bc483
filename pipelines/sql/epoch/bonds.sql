-- Bonds in closed form (SPEC 5.2's B' = B + S · w, summed over the holder's
-- segment): B'_ij = bond_ij + w_ij · ΣS_i, with bond_ij the bond after the
-- segment's first epoch and ΣS_i the holder's stake since (element i of the
-- per-holder list @bond_stake, an exact integer). fb_closed_form is the
-- loops' own function (math/bonds.rs closed_form): ΣS_i converted to DOUBLE
-- once, then one multiply and one add. (As a function call, not an operator,
-- it is named cheaply when a plan folds it into another function's
-- arguments; README.md, "Lists".)
-- Registered as the view `new_bonds`: the dividends' plans read it, nothing
-- materialises it. An entry may be 0 (a weight set by a holder without
-- stake); it adds nothing to a column's largest bond, its total or a
-- dividend, so the view does not spend a filter on it.
SELECT holder, peer, fb_closed_form(bond, weight, fb_at(@bond_stake, holder)) AS bond
FROM segments
